package dev.griffin.serve.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import dev.griffin.serve.analysis.ExpertOverlap;
import dev.griffin.serve.analysis.SummarizationEval;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;

/** How much different prompts' experts overlap, for batches of GRIFFIN sequences. */
@Command(name = "overlap", mixinStandardHelpOptions = true,
		description = "Runs each prompt of a JSONL file through a GRIFFIN variant and reports, for groups of B prompts, "
				+ "the union of their experts as a fraction of the feed-forward width (what a batch reading only "
				+ "its sequences' experts would read), next to independent random sets of the same size.")
public class OverlapCommand implements Callable<Integer> {

	@Spec
	CommandSpec spec;

	@Mixin
	ModelOptionsMixin model;

	@Option(names = "--input", required = true,
			description = "JSONL with the prompt in 'article' (the eval's format, e.g. ../shared/data/xsum_1shot_dev.jsonl).")
	Path input;

	@Option(names = { "-n", "--prompts" }, defaultValue = "0", description = "How many prompts (0: all).")
	int prompts;

	@Option(names = "--density", defaultValue = "0.5")
	double density;

	@Option(names = "--method", defaultValue = "topk")
	String method;

	@Option(names = "--batch", split = ",", defaultValue = "1,2,4,8,16")
	List<Integer> batches;

	@Option(names = "--groups", defaultValue = "200", description = "Groups drawn per batch size.")
	int groups;

	@Option(names = "--seed", defaultValue = "1")
	long seed;

	@Option(names = "--output", defaultValue = "target/overlap.json")
	Path output;

	@Override
	public Integer call() throws IOException {
		if (this.density <= 0 || this.density >= 1) {
			throw new CommandLine.ParameterException(this.spec.commandLine(), "--density must be in (0, 1)");
		}
		if (this.groups < 1) {
			throw new CommandLine.ParameterException(this.spec.commandLine(), "--groups must be at least 1");
		}
		SelectionMethod method;
		try {
			method = SelectionMethod.parse(this.method);
		}
		catch (IllegalArgumentException ex) {
			throw new CommandLine.ParameterException(this.spec.commandLine(), ex.getMessage());
		}
		if (method.delaysSelection()) {
			throw new CommandLine.ParameterException(this.spec.commandLine(), "--method " + this.method
					+ " selects after the reply's first tokens; overlap measures what prompts select");
		}
		this.model.configureEngine();
		List<SummarizationEval.Example> examples = SummarizationEval.read(this.input, this.prompts);
		List<ExpertOverlap.Row> rows;
		int neurons;
		List<Integer> lengths = new ArrayList<>();
		try (LoadedModel loaded = Progress.load(this.model, System.err)) {
			System.err.println();
			CausalLm griffin = loaded.variant(this.density, method);
			List<int[]> tokens = new ArrayList<>();
			for (SummarizationEval.Example example : examples) {
				int[] prompt = loaded.tokenizer().encode(example.prompt());
				tokens.add(prompt);
				lengths.add(prompt.length);
			}
			neurons = griffin.config().intermediateSize();
			rows = ExpertOverlap.measure(
					ExpertOverlap.experts(griffin, tokens,
							(done) -> System.err.printf("\rprompts run: %d of %d", done, tokens.size())),
					neurons, this.batches, this.groups, this.seed);
		}
		System.err.println();
		System.out.printf("%d prompts (%d-%d tokens), %s density %s, F = %d, %d groups per batch size%n",
				examples.size(), lengths.stream().mapToInt(Integer::intValue).min().orElse(0),
				lengths.stream().mapToInt(Integer::intValue).max().orElse(0), this.method, this.density, neurons,
				this.groups);
		System.out.printf("%6s %12s %12s %12s %14s%n", "batch", "union / F", "min layer", "max layer", "independent");
		for (ExpertOverlap.Row row : rows) {
			System.out.printf("%6d %12.3f %12.3f %12.3f %14.3f%n", row.batch(), row.union(), row.minLayer(),
					row.maxLayer(), row.independent());
		}
		Map<String, Object> report = new LinkedHashMap<>();
		report.put("input", this.input.getFileName().toString());
		report.put("prompts", examples.size());
		report.put("promptTokens", lengths);
		report.put("method", this.method);
		report.put("density", this.density);
		report.put("neurons", neurons);
		report.put("rows", rows);
		JsonReport.write(this.output, report);
		System.out.println("wrote " + this.output);
		return 0;
	}

}

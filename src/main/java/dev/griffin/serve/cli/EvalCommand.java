package dev.griffin.serve.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import dev.griffin.serve.analysis.SummarizationEval;
import dev.griffin.serve.generation.LoadedModel;

/** One-shot XSum ROUGE for the full model and GRIFFIN / baseline configurations. */
@Command(name = "eval", mixinStandardHelpOptions = true,
		description = "One-shot summarisation ROUGE-1/2/L (the GRIFFIN paper's XSum format) per configuration; "
				+ "resumable JSONL per example, a summary table and JSON results.")
public class EvalCommand implements Callable<Integer> {

	@Mixin
	ModelOptionsMixin model;

	@Option(names = "--input", required = true,
			description = "JSONL with 'article' (the full prompt) and 'summary_gt'.")
	Path input;

	@Option(names = { "-n", "--examples" }, defaultValue = "0", description = "How many examples (0: all).")
	int examples;

	@Option(names = "--configs", split = ",",
			defaultValue = "full,topk:0.25,topk:0.5,topk:0.75,magnitude:0.5,random:0.5",
			description = "full, or method:density (default: ${DEFAULT-VALUE}).")
	List<String> configs;

	@Option(names = "--max-tokens", defaultValue = "128")
	int maxTokens;

	@Option(names = "--greedy", description = "Greedy decoding instead of the paper's temperature 0.3.")
	boolean greedy;

	@Option(names = "--seed", defaultValue = "1234")
	long seed;

	@Option(names = "--output", defaultValue = "target/eval",
			description = "Directory of the per-example JSONL and results.")
	Path output;

	@Override
	public Integer call() throws IOException {
		this.model.configureEngine();
		List<SummarizationEval.Example> data = SummarizationEval.read(this.input, this.examples);
		List<SummarizationEval.Configuration> configurations = this.configs.stream()
			.map(SummarizationEval.Configuration::parse)
			.toList();
		Path output = this.output.resolve(this.greedy ? "greedy" : "sampled");
		List<SummarizationEval.Summary> summaries = new ArrayList<>();
		try (LoadedModel loaded = Progress.load(this.model, System.err)) {
			System.err.println();
			SummarizationEval eval = new SummarizationEval(loaded, this.maxTokens, this.greedy, this.seed);
			for (SummarizationEval.Configuration configuration : configurations) {
				summaries.add(eval.run(configuration, data, output, System.err));
			}
		}
		System.out.printf("%-16s %8s %8s %8s %8s%n", "configuration", "examples", "ROUGE-1", "ROUGE-2", "ROUGE-L");
		for (SummarizationEval.Summary s : summaries) {
			System.out.printf("%-16s %8d %8.2f %8.2f %8.2f%n", s.configuration(), s.examples(), s.rouge1(), s.rouge2(),
					s.rougeL());
		}
		Map<String, Object> report = new LinkedHashMap<>();
		report.put("input", this.input.getFileName().toString());
		report.put("decoding", this.greedy ? "greedy" : "temperature 0.3, top-p 1, seed " + this.seed);
		report.put("maxTokens", this.maxTokens);
		report.put("results", summaries);
		Path json = output.resolve("results.json");
		JsonReport.write(json, report);
		System.out.println("wrote " + json);
		return 0;
	}

}

package dev.griffin.serve.cli;

import java.io.IOException;
import java.nio.file.Files;
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

import dev.griffin.serve.analysis.EvalConfiguration;
import dev.griffin.serve.analysis.EvalSpeed;
import dev.griffin.serve.analysis.FidelityEval;
import dev.griffin.serve.analysis.QuestionEval;
import dev.griffin.serve.analysis.SummarizationEval;
import dev.griffin.serve.generation.LoadedModel;

/**
 * One-shot XSum ROUGE, or short chat questions answered right, for the full model and
 * GRIFFIN / baseline configurations.
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
		description = "--task xsum: one-shot summarisation ROUGE-1/2/L (the GRIFFIN paper's XSum format) per "
				+ "configuration, resumable JSONL per example. --task questions: short chat questions, how many "
				+ "each configuration answers right and how many of the full model's right answers it keeps. "
				+ "--task fidelity: the full model's greedy continuation of each prompt fed to each configuration; "
				+ "mean per-token KL(full || configuration) and top-1 agreement with standard errors, and where the "
				+ "full model ends its reply, whether the configuration ends it there too. "
				+ "Each writes a summary table and JSON results.")
public class EvalCommand implements Callable<Integer> {

	/** What is evaluated. */
	enum Task {

		xsum, questions, fidelity

	}

	@Mixin
	ModelOptionsMixin model;

	@Spec
	CommandSpec spec;

	@Option(names = "--task", defaultValue = "xsum",
			description = "xsum, questions or fidelity (default: ${DEFAULT-VALUE}).")
	Task task;

	@Option(names = "--input", required = true,
			description = "xsum: JSONL with 'article' (the full prompt) and 'summary_gt'; questions: JSONL with "
					+ "'question' and 'answers' (e.g. docs/eval/short-questions.jsonl); fidelity: either (an article "
					+ "is the raw prompt, a question goes through the chat template).")
	Path input;

	@Option(names = { "-n", "--examples" }, defaultValue = "0", description = "How many examples (0: all).")
	int examples;

	@Option(names = "--configs", split = ",",
			description = "full, default (the server's default rule), method:density, or method:density:tokens "
					+ "(dense for prompts of fewer tokens). Default: full,topk:0.25,topk:0.5,topk:0.75,"
					+ "magnitude:0.5,random:0.5 for xsum; full,default,topk:0.75,topk:0.5 for questions; "
					+ "topk:0.75,topk:0.5,magnitude:0.5 for fidelity.")
	List<String> configs;

	@Option(names = "--max-tokens",
			description = "Tokens generated per example (default: 128 for xsum, 32 for questions, 64 for fidelity).")
	Integer maxTokens;

	@Option(names = "--context", description = "questions: a text file whose first --context-tokens tokens "
			+ "form a system message before each question (longer prompts on the same questions).")
	Path context;

	@Option(names = "--context-tokens", defaultValue = "0")
	int contextTokens;

	@Option(names = "--greedy", description = "Greedy decoding instead of the paper's temperature 0.3.")
	boolean greedy;

	@Option(names = "--chat",
			description = "xsum: ask for each summary in a chat message through the model's chat "
					+ "template (the example's article, then \"" + SummarizationEval.CHAT_INSTRUCTION
					+ "\") instead of the paper's one-shot prompt; for instruct models. fidelity: the same for "
					+ "each article.")
	boolean chat;

	@Option(names = "--seed", defaultValue = "1234")
	long seed;

	@Option(names = "--output", defaultValue = "target/eval",
			description = "Directory of the per-example JSONL and results.")
	Path output;

	@Override
	public Integer call() throws IOException {
		if (this.chat && this.task == Task.questions) {
			throw new CommandLine.ParameterException(this.spec.commandLine(),
					"--chat applies to --task xsum and fidelity only (questions always go through the chat template)");
		}
		this.model.configureEngine();
		List<String> names = (this.configs != null) ? this.configs : switch (this.task) {
			case xsum -> List.of("full", "topk:0.25", "topk:0.5", "topk:0.75", "magnitude:0.5", "random:0.5");
			case questions -> List.of("full", "default", "topk:0.75", "topk:0.5");
			case fidelity -> List.of("topk:0.75", "topk:0.5", "magnitude:0.5");
		};
		List<EvalConfiguration> configurations = names.stream().map(EvalConfiguration::parse).toList();
		return switch (this.task) {
			case xsum -> summaries(configurations);
			case questions -> questions(configurations);
			case fidelity -> fidelity(configurations);
		};
	}

	private int summaries(List<EvalConfiguration> configurations) throws IOException {
		List<SummarizationEval.Example> data = SummarizationEval.read(this.input, this.examples);
		int maxTokens = (this.maxTokens != null) ? this.maxTokens : 128;
		Path output = this.output.resolve((this.greedy ? "greedy" : "sampled") + (this.chat ? "-chat" : ""));
		List<SummarizationEval.Summary> summaries = new ArrayList<>();
		try (LoadedModel loaded = Progress.load(this.model, System.err)) {
			System.err.println();
			SummarizationEval eval = new SummarizationEval(loaded, maxTokens, this.greedy, this.seed, this.chat);
			for (EvalConfiguration configuration : configurations) {
				summaries.add(eval.run(configuration, data, output, System.err));
			}
		}
		System.out.printf("%-16s %8s %8s %8s %8s %s%n", "configuration", "examples", "ROUGE-1", "ROUGE-2", "ROUGE-L",
				EvalSpeed.header());
		for (SummarizationEval.Summary s : summaries) {
			System.out.printf("%-16s %8d %8.2f %8.2f %8.2f %s%n", s.configuration(), s.examples(), s.rouge1(),
					s.rouge2(), s.rougeL(), s.speed().columns());
		}
		Map<String, Object> report = new LinkedHashMap<>();
		report.put("input", this.input.getFileName().toString());
		report.put("decoding", this.greedy ? "greedy" : "temperature 0.3, top-p 1, seed " + this.seed);
		report.put("maxTokens", maxTokens);
		report.put("format", this.chat ? "chat" : "one-shot");
		report.put("results", summaries);
		return written(output, report);
	}

	private int questions(List<EvalConfiguration> configurations) throws IOException {
		List<QuestionEval.Question> questions = QuestionEval.read(this.input, this.examples);
		int maxTokens = (this.maxTokens != null) ? this.maxTokens : 32;
		String context = (this.context != null) ? Files.readString(this.context) : null;
		Path output = this.output
			.resolve("questions" + ((this.contextTokens > 0) ? "-context-" + this.contextTokens : ""));
		List<QuestionEval.Summary> summaries = new ArrayList<>();
		try (LoadedModel loaded = Progress.load(this.model, System.err)) {
			System.err.println();
			QuestionEval eval = new QuestionEval(loaded, maxTokens, context, this.contextTokens);
			for (EvalConfiguration configuration : configurations) {
				summaries.add(eval.run(configuration, questions, output, System.err));
			}
		}
		QuestionEval.Summary full = summaries.stream()
			.filter((s) -> s.configuration().equals("full"))
			.findFirst()
			.orElse(null);
		System.out.printf("%-28s %9s %6s %14s %13s %12s %s%n", "configuration", "questions", "right", "kept of full",
				"prompt tokens", "mean density", EvalSpeed.header());
		List<Map<String, Object>> results = new ArrayList<>();
		for (QuestionEval.Summary s : summaries) {
			String kept = (full == null) ? "-" : "%.1f%%".formatted(100 * s.kept(full));
			System.out.printf("%-28s %9d %6d %14s %13.1f %12.3f %s%n", s.configuration(), s.questions(),
					s.right().size(), kept, s.meanPromptTokens(), s.meanDensity(), s.speed().columns());
			Map<String, Object> row = new LinkedHashMap<>();
			row.put("summary", s);
			if (full != null) {
				row.put("keptOfFull", s.kept(full));
				row.put("lost", s.lost(full));
			}
			results.add(row);
		}
		Map<String, Object> report = new LinkedHashMap<>();
		report.put("input", this.input.getFileName().toString());
		report.put("decoding", "greedy");
		report.put("maxTokens", maxTokens);
		report.put("contextTokens", this.contextTokens);
		report.put("results", results);
		return written(output, report);
	}

	private int fidelity(List<EvalConfiguration> configurations) throws IOException {
		int maxTokens = (this.maxTokens != null) ? this.maxTokens : 64;
		Path output = this.output.resolve("fidelity" + (this.chat ? "-chat" : ""));
		List<FidelityEval.Summary> summaries;
		try (LoadedModel loaded = Progress.load(this.model, System.err)) {
			System.err.println();
			List<int[]> prompts = FidelityEval.prompts(this.input, this.examples, loaded, this.chat);
			summaries = new FidelityEval(loaded, maxTokens).run(prompts, configurations, output, System.err);
		}
		System.out.printf("%-28s %8s %8s %18s %22s %6s %20s %22s%n", "configuration", "prompts", "tokens",
				"KL(full||c) nats", "top-1 agreement", "ends", "ends there too", "end token logprob");
		for (FidelityEval.Summary s : summaries) {
			String end = (s.ends() == 0) ? String.format(" %20s %22s", "-", "-")
					: String.format(" %11.3f +- %.3f %13.3f +- %.3f", s.endAgreement(), s.endAgreementStandardError(),
							s.endLogprob(), s.endLogprobStandardError());
			System.out.printf("%-28s %8d %8d %10.4f +- %.4f %13.3f +- %.3f %6d%s%n", s.configuration(), s.prompts(),
					s.tokens(), s.kl(), s.klStandardError(), s.agreement(), s.agreementStandardError(), s.ends(), end);
		}
		Map<String, Object> report = new LinkedHashMap<>();
		report.put("input", this.input.getFileName().toString());
		report.put("maxTokens", maxTokens);
		report.put("results", summaries);
		return written(output, report);
	}

	/** Writes {@code <output>/results.json} and says where. */
	private static int written(Path output, Map<String, Object> report) throws IOException {
		Path json = output.resolve("results.json");
		JsonReport.write(json, report);
		System.out.println("wrote " + json);
		return 0;
	}

}

package dev.griffin.serve.analysis;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.tokenizer.ChatTemplate;

/**
 * One-shot XSum summarisation in the GRIFFIN paper's format (Dong et al. 2024, section
 * 5): each example's prompt ends with "Summarize the above article in 1 sentences."; up
 * to 128 tokens are generated, cut at "###", and scored with ROUGE-1/2/L against the
 * reference summary. In the chat format, for instruct models that stop early in the
 * paper's raw format, the example's own article (the last of its one-shot prompt) and the
 * instruction go through the model's chat template as one user message instead. Outputs
 * are appended per example to {@code <output>/<configuration>.jsonl}, so an interrupted
 * run resumes.
 */
public final class SummarizationEval {

	private static final ObjectMapper JSON = new ObjectMapper();

	/** One example of the input file. */
	public record Example(int index, String prompt, String reference) {

	}

	/** Mean F-scores of a configuration, in percent, and how fast it ran. */
	public record Summary(String configuration, int examples, double rouge1, double rouge2, double rougeL,
			EvalSpeed speed) {

	}

	private final LoadedModel model;

	private final int maxTokens;

	private final boolean greedy;

	private final long seed;

	private final boolean chat;

	/** The chat format's instruction, after the article. */
	public static final String CHAT_INSTRUCTION = "Summarize the above article in one sentence.";

	/**
	 * @param chat whether to ask in the chat format (the model needs a chat template)
	 */
	public SummarizationEval(LoadedModel model, int maxTokens, boolean greedy, long seed, boolean chat) {
		if (chat && model.tokenizer().chatTemplate() == null) {
			throw new IllegalArgumentException("the chat format needs a model with a chat template");
		}
		this.model = model;
		this.maxTokens = maxTokens;
		this.greedy = greedy;
		this.seed = seed;
		this.chat = chat;
	}

	/**
	 * The article a one-shot prompt asks to summarise: the text after its last "Article:
	 * " up to the closing instruction.
	 * @throws IllegalArgumentException when the prompt is not in the one-shot format
	 */
	static String article(String oneShot) {
		int start = oneShot.lastIndexOf("Article: ");
		int end = oneShot.lastIndexOf("Summarize the above article");
		if (start < 0 || end < start) {
			throw new IllegalArgumentException(
					"not a one-shot XSum prompt (no 'Article: ' before 'Summarize the above article')");
		}
		return oneShot.substring(start + "Article: ".length(), end).strip();
	}

	/** The prompt's token ids in this evaluation's format. */
	int[] prompt(Example example) {
		if (!this.chat) {
			return this.model.tokenizer().encode(example.prompt());
		}
		return chatPrompt(this.model, example.prompt());
	}

	/**
	 * The chat format's prompt of a one-shot XSum prompt: its last article and
	 * {@link #CHAT_INSTRUCTION} as one user message through the model's chat template.
	 * @throws IllegalArgumentException when the prompt is not in the one-shot format
	 */
	static int[] chatPrompt(LoadedModel model, String oneShot) {
		String message = article(oneShot) + "\n\n" + CHAT_INSTRUCTION;
		return model.tokenizer().encodeChat(List.of(new ChatTemplate.Message("user", message)), true, false);
	}

	public static List<Example> read(Path file, int limit) throws IOException {
		return JsonLines.read(file, limit, "'article' and 'summary_gt'", (row, index) -> {
			if (!row.hasNonNull("article") || !row.hasNonNull("summary_gt")) {
				return null;
			}
			return new Example(index, row.get("article").asText(), row.get("summary_gt").asText());
		});
	}

	/** Runs (or resumes) one configuration and returns its mean scores. */
	public Summary run(EvalConfiguration configuration, List<Example> examples, Path output, PrintStream progress)
			throws IOException {
		Files.createDirectories(output);
		Path results = output.resolve(configuration.name() + ".jsonl");
		Map<Integer, JsonNode> done = new LinkedHashMap<>();
		if (Files.exists(results)) {
			for (String line : Files.readAllLines(results)) {
				if (!line.isBlank()) {
					JsonNode row = JSON.readTree(line);
					done.put(row.get("index").asInt(), row);
				}
			}
		}
		Map<Double, Generator> generators = new HashMap<>();
		try (BufferedWriter out = Files.newBufferedWriter(results, StandardOpenOption.CREATE,
				StandardOpenOption.APPEND)) {
			int count = 0;
			for (Example example : examples) {
				count++;
				if (done.containsKey(example.index())) {
					continue;
				}
				// the paper's sampling: temperature 0.3, top-p 1, a fixed seed per
				// example; or greedy
				SamplingParams params = new SamplingParams(this.greedy ? 0 : 0.3, 0, 1.0, 0, 1, 0, 0,
						this.seed + example.index(), this.maxTokens, List.of("###"), List.of(), false);
				int[] prompt = prompt(example);
				Generator generator = generators.computeIfAbsent(configuration.densityFor(prompt.length),
						(density) -> new Generator(this.model.variant(density, configuration.method()),
								this.model.tokenizer()));
				long start = System.nanoTime();
				Generator.Result result = generator.generate(prompt, params, (token, text) -> true);
				String summary = result.text().strip();
				Rouge.Scores scores = Rouge.score(example.reference(), summary);
				Map<String, Object> row = new LinkedHashMap<>();
				row.put("index", example.index());
				row.put("configuration", configuration.name());
				row.put("prediction", summary);
				row.put("reference", example.reference());
				row.put("rouge1", scores.rouge1().fmeasure());
				row.put("rouge2", scores.rouge2().fmeasure());
				row.put("rougeL", scores.rougeL().fmeasure());
				row.put("promptTokens", prompt.length);
				row.put("generatedTokens", result.tokens().length);
				row.put("seconds", (System.nanoTime() - start) / 1e9);
				EvalSpeed.record(row, result);
				out.write(JSON.writeValueAsString(row));
				out.newLine();
				out.flush();
				done.put(example.index(), JSON.valueToTree(row));
				progress.printf("\r%-14s [%-40s] %d/%d", configuration.name(), "#".repeat(40 * count / examples.size()),
						count, examples.size());
				progress.flush();
			}
		}
		progress.println();
		double r1 = 0;
		double r2 = 0;
		double rl = 0;
		int n = 0;
		List<JsonNode> rows = new ArrayList<>();
		for (Example example : examples) {
			JsonNode row = done.get(example.index());
			rows.add(row);
			r1 += row.get("rouge1").asDouble();
			r2 += row.get("rouge2").asDouble();
			rl += row.get("rougeL").asDouble();
			n++;
		}
		return new Summary(configuration.name(), n, 100 * r1 / n, 100 * r2 / n, 100 * rl / n, EvalSpeed.of(rows));
	}

}

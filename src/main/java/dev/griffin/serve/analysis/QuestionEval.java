package dev.griffin.serve.analysis;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.tokenizer.ChatTemplate;

/**
 * Short chat questions with checkable answers: each question is sent as one user message
 * through the model's chat template, up to {@code maxTokens} tokens are generated
 * greedily, and the answer counts as right when the reply contains one of the question's
 * accepted answers as whole words (case, accents and punctuation ignored). What matters
 * is how many of the questions the full model gets right a configuration keeps: short
 * prompts give GRIFFIN the least to select experts from. Optionally a system message of
 * the first {@code contextTokens} tokens of a text precedes each question, to see how
 * selection behaves as the prompt grows. Replies are written per configuration to
 * {@code <output>/<configuration>.jsonl}.
 */
public final class QuestionEval {

	private static final ObjectMapper JSON = new ObjectMapper();

	/** One question and the answers that count as right. */
	public record Question(int index, String question, List<String> answers) {

	}

	/**
	 * What a configuration got right.
	 *
	 * @param right indices of the questions answered right
	 * @param meanPromptTokens mean prompt length, template and context included
	 * @param meanDensity mean density the questions ran at (a rule may run some dense)
	 * @param speed how fast the configuration ran
	 */
	public record Summary(String configuration, int questions, List<Integer> right, double meanPromptTokens,
			double meanDensity, EvalSpeed speed) {

		/**
		 * Of the questions {@code reference} answered right, the fraction this one also
		 * did (NaN when the reference answered none).
		 */
		public double kept(Summary reference) {
			if (reference.right.isEmpty()) {
				return Double.NaN;
			}
			return (double) reference.right.stream().filter(this.right::contains).count() / reference.right.size();
		}

		/** The questions {@code reference} answered right and this one did not. */
		public List<Integer> lost(Summary reference) {
			return reference.right.stream().filter((index) -> !this.right.contains(index)).toList();
		}

	}

	private final LoadedModel model;

	private final int maxTokens;

	private final String context;

	/**
	 * @param contextText text whose first {@code contextTokens} tokens form a system
	 * message before each question, or null
	 * @param contextTokens 0 for no system message
	 */
	public QuestionEval(LoadedModel model, int maxTokens, String contextText, int contextTokens) {
		if (model.tokenizer().chatTemplate() == null) {
			throw new IllegalArgumentException("the question evaluation needs a model with a chat template");
		}
		this.model = model;
		this.maxTokens = maxTokens;
		this.context = (contextTokens > 0) ? firstTokens(model, contextText, contextTokens) : null;
	}

	private static String firstTokens(LoadedModel model, String text, int tokens) {
		if (text == null) {
			throw new IllegalArgumentException("a context of %d tokens needs a context text".formatted(tokens));
		}
		int[] ids = model.tokenizer().encode(text.strip());
		// the tokens the tokenizer puts before any text (a beginning-of-sequence token)
		int offset = model.tokenizer().encode("").length;
		if (ids.length - offset < tokens) {
			throw new IllegalArgumentException("the context text has %d tokens, fewer than the %d asked for"
				.formatted(ids.length - offset, tokens));
		}
		return model.tokenizer().decode(Arrays.copyOfRange(ids, offset, offset + tokens), true);
	}

	public static List<Question> read(Path file, int limit) throws IOException {
		return JsonLines.read(file, limit, "'question' and a non-empty array 'answers'", (row, index) -> {
			JsonNode answers = row.get("answers");
			if (!row.hasNonNull("question") || answers == null || !answers.isArray() || answers.isEmpty()) {
				return null;
			}
			List<String> accepted = new ArrayList<>();
			answers.forEach((answer) -> accepted.add(answer.asText()));
			return new Question(index, row.get("question").asText(), List.copyOf(accepted));
		});
	}

	/** Runs one configuration over the questions. */
	public Summary run(EvalConfiguration configuration, List<Question> questions, Path output, PrintStream progress)
			throws IOException {
		Files.createDirectories(output);
		List<Integer> right = new ArrayList<>();
		double promptTokens = 0;
		double densities = 0;
		Map<Double, Generator> generators = new LinkedHashMap<>();
		List<JsonNode> rows = new ArrayList<>();
		SamplingParams greedy = new SamplingParams(0, 0, 1.0, 0, 1, 0, 0, 0L, this.maxTokens, List.of(), List.of(),
				false);
		try (BufferedWriter out = Files.newBufferedWriter(output.resolve(configuration.name() + ".jsonl"))) {
			for (Question question : questions) {
				List<ChatTemplate.Message> messages = new ArrayList<>();
				if (this.context != null) {
					messages.add(new ChatTemplate.Message("system", this.context));
				}
				messages.add(new ChatTemplate.Message("user", question.question()));
				int[] prompt = this.model.tokenizer().encodeChat(messages, true, false);
				double density = configuration.densityFor(prompt.length);
				Generator generator = generators.computeIfAbsent(density,
						(d) -> new Generator(this.model.variant(d, configuration.method()), this.model.tokenizer()));
				Generator.Result result = generator.generate(prompt, greedy, (token, text) -> true);
				String reply = result.text().strip();
				boolean correct = answers(reply, question.answers());
				if (correct) {
					right.add(question.index());
				}
				promptTokens += prompt.length;
				densities += density;
				Map<String, Object> row = new LinkedHashMap<>();
				row.put("index", question.index());
				row.put("configuration", configuration.name());
				row.put("question", question.question());
				row.put("reply", reply);
				row.put("right", correct);
				row.put("promptTokens", prompt.length);
				row.put("density", density);
				EvalSpeed.record(row, result);
				rows.add(JSON.valueToTree(row));
				out.write(JSON.writeValueAsString(row));
				out.newLine();
				progress.printf("\r%-22s %d/%d, %d right", configuration.name(), question.index() + 1, questions.size(),
						right.size());
				progress.flush();
			}
		}
		progress.println();
		int n = questions.size();
		return new Summary(configuration.name(), n, List.copyOf(right), promptTokens / n, densities / n,
				EvalSpeed.of(rows));
	}

	/**
	 * Whether {@code reply} holds one of {@code answers} as whole words, ignoring case,
	 * accents and punctuation.
	 */
	public static boolean answers(String reply, List<String> answers) {
		String text = " " + words(reply) + " ";
		return answers.stream().map(QuestionEval::words).anyMatch((answer) -> text.contains(" " + answer + " "));
	}

	/** Lower-case letters and digits, every other run of characters one space. */
	static String words(String text) {
		String plain = Normalizer.normalize(text, Normalizer.Form.NFKD).replaceAll("\\p{M}", "");
		return plain.toLowerCase(Locale.ROOT).replaceAll("[^\\p{L}\\p{Nd}]+", " ").strip();
	}

}

package dev.griffin.serve.analysis;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;

import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.Sampler;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.tokenizer.ChatTemplate;

/**
 * A task-free measure of how closely a configuration follows the full model: on each
 * prompt the full model's greedy continuation (up to {@code tokens} tokens, ending at an
 * end token) is fed to the configuration's model token by token (teacher-forced; GRIFFIN
 * picks its experts from the prompt as always), and at each position the two next-token
 * distributions are compared: KL(full || configuration) in nats, and whether the
 * configuration's most likely token is the full model's. Both are averaged per prompt,
 * then over prompts, with the standard error of that mean. Where the full model's
 * continuation ends on an end token, that last position is also scored on its own: does
 * the configuration end the reply there too (its most likely token is an end token), and
 * the log-probability it gives the full model's end token. A reply that does not end
 * where the full model's does runs on, which the per-token means barely show.
 */
public final class FidelityEval {

	private static final ObjectMapper JSON = new ObjectMapper();

	/**
	 * Means over prompts of each prompt's mean, with their standard errors.
	 *
	 * @param kl mean per-token KL(full || configuration), nats
	 * @param agreement mean fraction of positions whose most likely token is the full
	 * model's
	 * @param ends prompts whose full-model continuation ends on an end token (within the
	 * tokens scored)
	 * @param endAgreement over those, the fraction where the configuration's most likely
	 * token at that position is an end token too (null without any)
	 * @param endLogprob over those, the mean log-probability the configuration gives the
	 * full model's end token there (null without any)
	 */
	public record Summary(String configuration, int prompts, int tokens, double kl, double klStandardError,
			double agreement, double agreementStandardError, int ends, Double endAgreement,
			Double endAgreementStandardError, Double endLogprob, Double endLogprobStandardError) {

	}

	/**
	 * The full model's greedy continuation of one prompt and its logits at each step;
	 * {@code ended}: its last token is an end token.
	 */
	private record Reference(int[] tokens, float[][] logits, boolean ended) {

	}

	/**
	 * A configuration's scores on one prompt; the end's are NaN where the reference does
	 * not end.
	 */
	private record Scores(double kl, double agreement, double endAgreement, double endLogprob) {

	}

	private final LoadedModel model;

	private final int tokens;

	/**
	 * @param tokens the longest continuation scored per prompt
	 */
	public FidelityEval(LoadedModel model, int tokens) {
		if (tokens < 1) {
			throw new IllegalArgumentException("tokens must be >= 1, got " + tokens);
		}
		this.model = model;
		this.tokens = tokens;
	}

	private boolean isEnd(int token) {
		for (int id : this.model.dense().config().eosTokenIds()) {
			if (id == token) {
				return true;
			}
		}
		return false;
	}

	private Reference reference(int[] prompt) {
		CausalLm dense = this.model.dense();
		List<float[]> logits = new ArrayList<>();
		List<Integer> continuation = new ArrayList<>();
		try (InferenceSession session = new InferenceSession(dense, prompt.length + this.tokens)) {
			float[] next = session.prefill(prompt, prompt.length);
			while (true) {
				logits.add(next);
				int token = Sampler.argmax(next);
				continuation.add(token);
				if (continuation.size() == this.tokens || isEnd(token)) {
					break;
				}
				next = session.decode(token);
			}
		}
		return new Reference(continuation.stream().mapToInt(Integer::intValue).toArray(),
				logits.toArray(new float[0][]), isEnd(continuation.get(continuation.size() - 1)));
	}

	/**
	 * Scores each configuration against the full model on every prompt, a prompt at a
	 * time (the full model's logits of one continuation are all that is held); each
	 * prompt's means go to {@code <output>/<configuration>.jsonl}.
	 */
	public List<Summary> run(List<int[]> prompts, List<EvalConfiguration> configurations, Path output,
			PrintStream progress) throws IOException {
		Files.createDirectories(output);
		int n = prompts.size();
		int c = configurations.size();
		double[][] kl = new double[c][n];
		double[][] agreement = new double[c][n];
		double[][] endAgreement = new double[c][n];
		double[][] endLogprob = new double[c][n];
		int positions = 0;
		List<BufferedWriter> outs = new ArrayList<>();
		// each configuration's models, by the densities its rule gives the prompts
		List<Map<Double, CausalLm>> variants = new ArrayList<>();
		try {
			for (EvalConfiguration configuration : configurations) {
				outs.add(Files.newBufferedWriter(output.resolve(configuration.name() + ".jsonl")));
				variants.add(new HashMap<>());
			}
			for (int p = 0; p < n; p++) {
				int[] prompt = prompts.get(p);
				Reference reference = reference(prompt);
				int steps = reference.tokens().length;
				positions += steps;
				for (int k = 0; k < c; k++) {
					EvalConfiguration configuration = configurations.get(k);
					double density = configuration.densityFor(prompt.length);
					CausalLm variant = variants.get(k)
						.computeIfAbsent(density, (d) -> this.model.variant(d, configuration.method()));
					Scores scores = score(variant, prompt, reference);
					kl[k][p] = scores.kl();
					agreement[k][p] = scores.agreement();
					endAgreement[k][p] = scores.endAgreement();
					endLogprob[k][p] = scores.endLogprob();
					Map<String, Object> row = new LinkedHashMap<>();
					row.put("index", p);
					row.put("configuration", configuration.name());
					row.put("promptTokens", prompt.length);
					row.put("density", density);
					row.put("tokens", steps);
					row.put("kl", kl[k][p]);
					row.put("agreement", agreement[k][p]);
					if (reference.ended()) {
						row.put("endAgreement", endAgreement[k][p]);
						row.put("endLogprob", endLogprob[k][p]);
					}
					outs.get(k).write(JSON.writeValueAsString(row));
					outs.get(k).newLine();
				}
				progress.printf("\rfidelity %d/%d prompts", p + 1, n);
				progress.flush();
			}
		}
		finally {
			for (BufferedWriter out : outs) {
				out.close();
			}
		}
		progress.println();
		List<Summary> summaries = new ArrayList<>();
		for (int k = 0; k < c; k++) {
			double[] agreed = ended(endAgreement[k]);
			double[] logprobs = ended(endLogprob[k]);
			boolean any = agreed.length > 0;
			summaries.add(new Summary(configurations.get(k).name(), n, positions, mean(kl[k]), standardError(kl[k]),
					mean(agreement[k]), standardError(agreement[k]), agreed.length, any ? mean(agreed) : null,
					any ? standardError(agreed) : null, any ? mean(logprobs) : null,
					any ? standardError(logprobs) : null));
		}
		return summaries;
	}

	/**
	 * The prompts of a JSONL file: a line's {@code article} is the raw prompt (the XSum
	 * evaluation's format), a line's {@code question} one user message through the
	 * model's chat template.
	 * @param limit the first this many lines (0: all)
	 */
	public static List<int[]> prompts(Path file, int limit, LoadedModel model) throws IOException {
		return prompts(file, limit, model, false);
	}

	/**
	 * As {@link #prompts(Path, int, LoadedModel)}, but with {@code chat} an
	 * {@code article} is asked for in the chat format of the summarisation evaluation
	 * (its last article and the instruction as one user message, {@code eval --chat}): an
	 * instruct model that stops after a few tokens of the raw prompt writes whole
	 * sentences there, so the continuation scored is a summary.
	 * @throws IllegalArgumentException with {@code chat}, for a model without a chat
	 * template
	 */
	public static List<int[]> prompts(Path file, int limit, LoadedModel model, boolean chat) throws IOException {
		if (chat && model.tokenizer().chatTemplate() == null) {
			throw new IllegalArgumentException("the chat format needs a model with a chat template");
		}
		return JsonLines.read(file, limit, "'article' or 'question'", (row, index) -> {
			if (row.hasNonNull("article")) {
				String article = row.get("article").asText();
				return chat ? SummarizationEval.chatPrompt(model, article) : model.tokenizer().encode(article);
			}
			if (row.hasNonNull("question")) {
				return model.tokenizer()
					.encodeChat(List.of(new ChatTemplate.Message("user", row.get("question").asText())), true, false);
			}
			return null;
		});
	}

	/** The values of the prompts whose reference ended (the others are NaN). */
	private static double[] ended(double[] values) {
		return Arrays.stream(values).filter((value) -> !Double.isNaN(value)).toArray();
	}

	/** The scores of {@code variant} fed the reference continuation. */
	private Scores score(CausalLm variant, int[] prompt, Reference reference) {
		int steps = reference.tokens().length;
		double klSum = 0;
		int agreed = 0;
		double endAgreement = Double.NaN;
		double endLogprob = Double.NaN;
		try (InferenceSession session = new InferenceSession(variant, prompt.length + this.tokens)) {
			float[] next = session.prefill(prompt, prompt.length);
			for (int i = 0; i < steps; i++) {
				klSum += divergence(reference.logits()[i], next);
				int top = Sampler.argmax(next);
				agreed += (top == reference.tokens()[i]) ? 1 : 0;
				if (i + 1 < steps) {
					next = session.decode(reference.tokens()[i]);
				}
				else if (reference.ended()) {
					endAgreement = isEnd(top) ? 1 : 0;
					endLogprob = next[reference.tokens()[i]] - Sampler.logSumExp(next);
				}
			}
		}
		return new Scores(klSum / steps, (double) agreed / steps, endAgreement, endLogprob);
	}

	/** KL(p || q) in nats of the softmax distributions of two logit vectors. */
	static double divergence(float[] p, float[] q) {
		double[] logP = logSoftmax(p);
		double[] logQ = logSoftmax(q);
		double sum = 0;
		for (int i = 0; i < logP.length; i++) {
			double probability = Math.exp(logP[i]);
			if (probability > 0) {
				sum += probability * (logP[i] - logQ[i]);
			}
		}
		return Math.max(0, sum);
	}

	private static double[] logSoftmax(float[] logits) {
		double log = Sampler.logSumExp(logits);
		double[] result = new double[logits.length];
		for (int i = 0; i < logits.length; i++) {
			result[i] = logits[i] - log;
		}
		return result;
	}

	static double mean(double[] values) {
		double sum = 0;
		for (double value : values) {
			sum += value;
		}
		return sum / values.length;
	}

	/**
	 * The standard error of the mean (sample standard deviation / sqrt(n)); 0 for one.
	 */
	static double standardError(double[] values) {
		int n = values.length;
		if (n < 2) {
			return 0;
		}
		double mean = mean(values);
		double squares = 0;
		for (double value : values) {
			squares += (value - mean) * (value - mean);
		}
		return Math.sqrt(squares / (n - 1) / n);
	}

}

package dev.griffin.serve.analysis;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import ai.djl.ndarray.NDArray;

import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.griffin.ExpertSelector;
import dev.griffin.serve.griffin.GriffinFeedForward;
import dev.griffin.serve.griffin.NeuronPrior;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.tokenizer.ChatTemplate;

/**
 * Measures a model's neuron prior ({@link NeuronPrior}), the prior's weight tau and the
 * layers' sensitivities.
 * <p>
 * Each instruction goes through the model's chat template as a user message and the dense
 * model replies greedily, while every feed-forward block records the prompt's statistic
 * s^2 and, separately, the reply's. The prior g is the replies' statistic over all
 * instructions, divided by their tokens. Tau is chosen by what the prior is for:
 * predicting the neurons a reply will use from its prompt. For each instruction, the
 * experts {@code topk(s^2 + tau * g)} of its prompt, with g measured on the other
 * instructions only, are scored by the share of its own reply's statistic (the sum of the
 * reply tokens' {@code Zbar^2}) they hold, what generation keeps of the activations; the
 * tau with the largest mean share over instructions and layers wins (tau 0 is GRIFFIN's
 * own selection). Last, each layer's sensitivity ({@link #sensitivity}) is measured on
 * the replies to the first instructions, for the {@code layerwise} method.
 */
public final class PriorCalibration {

	/** The tau values tried, in tokens. */
	static final double[] TAUS = { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 65536 };

	/** The densities at which each layer's sensitivity is measured. */
	static final double[] SENSITIVITY_DENSITIES = { 0.25, 0.5, 0.75 };

	private static final String SEEDS = "prior-seeds.txt";

	/**
	 * What a measurement found.
	 *
	 * @param prior the prior with the chosen tau
	 * @param taus the tau values tried
	 * @param shares per tau, the mean share of a reply's activations (its statistic) that
	 * the prompt's selection holds
	 * @param instructions how many instructions
	 * @param promptTokens their prompts' mean length
	 */
	public record Result(NeuronPrior prior, double[] taus, double[] shares, int instructions, double promptTokens) {

	}

	private PriorCalibration() {
	}

	/**
	 * The instructions shipped with the engine, one per line ({@code #} starts a
	 * comment).
	 */
	public static List<String> instructions() {
		try (InputStream in = PriorCalibration.class.getResourceAsStream(SEEDS)) {
			if (in == null) {
				throw new IllegalStateException(SEEDS + " is missing from the classpath");
			}
			List<String> lines = new ArrayList<>();
			try (BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
				for (String line = reader.readLine(); line != null; line = reader.readLine()) {
					if (!line.isBlank() && !line.startsWith("#")) {
						lines.add(line.strip());
					}
				}
			}
			return lines;
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
	}

	/**
	 * @param instructions at least two (tau is measured leaving each one out)
	 * @param maxTokens the longest reply
	 * @param density the density at which selections are compared
	 * @param sensitivityInstructions on how many of the instructions (the first ones) the
	 * layers' sensitivity is measured
	 */
	public static Result measure(LoadedModel model, List<String> instructions, int maxTokens, double density,
			int sensitivityInstructions, PrintStream progress) {
		if (instructions.size() < 2) {
			throw new IllegalArgumentException("measuring tau needs at least two instructions");
		}
		if (model.tokenizer().chatTemplate() == null) {
			throw new IllegalArgumentException(
					"the neuron prior is measured on chat replies: the model needs a chat template");
		}
		CausalLm dense = model.dense();
		int layers = dense.config().numberOfLayers();
		int f = dense.config().intermediateSize();
		int n = instructions.size();
		// per instruction, per layer: the prompt's and the reply's s^2
		double[][][] prompts = new double[n][][];
		double[][][] replies = new double[n][][];
		int[] replyTokens = new int[n];
		List<int[]> promptIds = new ArrayList<>();
		List<int[]> replyIds = new ArrayList<>();
		double promptTokens = 0;
		for (int i = 0; i < n; i++) {
			double[][] prompt = new double[layers][f];
			double[][] reply = new double[layers][f];
			int[] tokens = new int[1];
			CausalLm recording = dense.withFeedForwards((layer, feedForward) -> new Recorder(feedForward.weights(),
					prompt[layer], reply[layer], layer == 0 ? tokens : null));
			int[] ids = model.tokenizer()
				.encodeChat(List.of(new ChatTemplate.Message("user", instructions.get(i))), true, false);
			int[] generated = new Generator(recording, model.tokenizer())
				.generate(ids, SamplingParams.greedy(maxTokens), (token, text) -> true)
				.tokens();
			promptIds.add(ids);
			replyIds.add(generated);
			prompts[i] = prompt;
			replies[i] = reply;
			replyTokens[i] = tokens[0];
			promptTokens += ids.length;
			progress.printf("\rinstructions: %d of %d", i + 1, n);
			progress.flush();
		}
		progress.println();
		double[][] total = new double[layers][f];
		int totalTokens = 0;
		for (int i = 0; i < n; i++) {
			totalTokens += replyTokens[i];
			for (int layer = 0; layer < layers; layer++) {
				for (int j = 0; j < f; j++) {
					total[layer][j] += replies[i][layer][j];
				}
			}
		}
		if (totalTokens == 0) {
			throw new IllegalStateException("the model replied to no instruction with a token to measure");
		}
		int k = (int) Math.floor(f * density);
		double[] shares = new double[TAUS.length];
		int counted = 0;
		for (int i = 0; i < n; i++) {
			int others = totalTokens - replyTokens[i];
			if (replyTokens[i] == 0 || others == 0) {
				continue;
			}
			counted++;
			for (int layer = 0; layer < layers; layer++) {
				double[] reply = replies[i][layer];
				double energy = 0;
				for (int j = 0; j < f; j++) {
					energy += reply[j];
				}
				double[] prior = new double[f];
				for (int j = 0; j < f; j++) {
					prior[j] = (total[layer][j] - reply[j]) / others;
				}
				for (int t = 0; t < TAUS.length; t++) {
					double[] scores = new double[f];
					for (int j = 0; j < f; j++) {
						scores[j] = prompts[i][layer][j] + TAUS[t] * prior[j];
					}
					double covered = 0;
					for (int j : ExpertSelector.top(scores, k)) {
						covered += reply[j];
					}
					shares[t] += covered / energy / layers;
				}
			}
		}
		if (counted == 0) {
			throw new IllegalStateException("no instruction had a reply and others to measure tau against");
		}
		int best = 0;
		for (int t = 0; t < TAUS.length; t++) {
			shares[t] /= counted;
			if (shares[t] > shares[best]) {
				best = t;
			}
		}
		double[][] prior = new double[layers][f];
		for (int layer = 0; layer < layers; layer++) {
			for (int j = 0; j < f; j++) {
				prior[layer][j] = total[layer][j] / totalTokens;
			}
		}
		int measured = Math.min(n, sensitivityInstructions);
		NeuronPrior.LayerSensitivity sensitivity = sensitivity(model, promptIds.subList(0, measured),
				replyIds.subList(0, measured), progress);
		return new Result(new NeuronPrior(TAUS[best], totalTokens, prior, sensitivity), TAUS.clone(), shares, n,
				promptTokens / n);
	}

	/**
	 * Each layer's sensitivity ({@link NeuronPrior.LayerSensitivity}): for every layer
	 * and every density of {@link #SENSITIVITY_DENSITIES}, the model with that layer
	 * alone running {@code topk} reads each prompt (the experts come from it) and is then
	 * fed the full model's reply in one pass; the KL of its next-token distributions from
	 * the full model's, per reply token, is averaged per instruction and then over
	 * instructions.
	 */
	static NeuronPrior.LayerSensitivity sensitivity(LoadedModel model, List<int[]> prompts, List<int[]> replies,
			PrintStream progress) {
		CausalLm dense = model.dense();
		int layers = dense.config().numberOfLayers();
		int f = dense.config().intermediateSize();
		double[] densities = SENSITIVITY_DENSITIES;
		List<float[][]> references = new ArrayList<>();
		int counted = 0;
		for (int i = 0; i < prompts.size(); i++) {
			references.add(replies.get(i).length == 0 ? null : reference(dense, prompts.get(i), replies.get(i)));
			counted += replies.get(i).length == 0 ? 0 : 1;
		}
		if (counted == 0) {
			throw new IllegalStateException("no instruction had a reply to measure the layers' sensitivity on");
		}
		double[][] kl = new double[layers][densities.length];
		for (int layer = 0; layer < layers; layer++) {
			for (int d = 0; d < densities.length; d++) {
				int target = layer;
				int k = (int) Math.floor(f * densities[d]);
				CausalLm variant = dense.withFeedForwards((index, feedForward) -> (index == target)
						? new GriffinFeedForward(feedForward.weights(), k, SelectionMethod.TOPK, dense.manager())
						: feedForward);
				double sum = 0;
				for (int i = 0; i < prompts.size(); i++) {
					if (references.get(i) != null) {
						sum += divergence(variant, prompts.get(i), replies.get(i), references.get(i));
					}
				}
				kl[layer][d] = sum / counted;
			}
			progress.printf("\rlayer sensitivity: %d of %d layers", layer + 1, layers);
			progress.flush();
		}
		progress.println();
		return new NeuronPrior.LayerSensitivity(densities, kl);
	}

	/**
	 * The full model's next-token logits at the prompt's last token and after each reply
	 * token but the last, [reply length][V].
	 */
	private static float[][] reference(CausalLm dense, int[] prompt, int[] reply) {
		int[] all = new int[prompt.length + reply.length - 1];
		System.arraycopy(prompt, 0, all, 0, prompt.length);
		System.arraycopy(reply, 0, all, prompt.length, reply.length - 1);
		try (InferenceSession session = new InferenceSession(dense, all.length)) {
			float[][] logits = session.prefillAllLogits(all);
			return java.util.Arrays.copyOfRange(logits, prompt.length - 1, all.length);
		}
	}

	/** Mean per-token KL(full || variant) over a reply fed to the variant. */
	private static double divergence(CausalLm variant, int[] prompt, int[] reply, float[][] reference) {
		try (InferenceSession session = new InferenceSession(variant, prompt.length + reply.length)) {
			double sum = FidelityEval.divergence(reference[0], session.prefill(prompt, prompt.length));
			if (reply.length > 1) {
				float[][] logits = session.decodeAllLogits(java.util.Arrays.copyOf(reply, reply.length - 1));
				for (int t = 0; t < logits.length; t++) {
					sum += FidelityEval.divergence(reference[t + 1], logits[t]);
				}
			}
			return sum / reply.length;
		}
	}

	/**
	 * The dense block, adding each prompt token's {@code Zbar^2} to one sum and each
	 * generated token's to another.
	 */
	private static final class Recorder extends ActivationRecorder {

		private final double[] prompt;

		private final double[] reply;

		/** Counts the generated tokens (one layer's recorder does). */
		private final int[] tokens;

		Recorder(Weights weights, double[] prompt, double[] reply, int[] tokens) {
			super(weights);
			this.prompt = prompt;
			this.reply = reply;
			this.tokens = tokens;
		}

		@Override
		void record(NDArray z, Phase phase) {
			double[] squares = ExpertSelector.sumOfSquares(z); // [F]
			double[] sums = (phase == Phase.PROMPT) ? this.prompt : this.reply;
			for (int j = 0; j < squares.length; j++) {
				sums[j] += squares[j];
			}
			if (phase == Phase.GENERATION && this.tokens != null) {
				this.tokens[0] += (int) z.getShape().get(0);
			}
		}

	}

}

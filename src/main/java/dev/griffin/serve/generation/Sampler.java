package dev.griffin.serve.generation;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: penalties, then greedy or temperature with top-k,
 * top-p and min-p filtering. Logits arrive as a Java array (one copy from the device per
 * step), so sampling costs microseconds next to a decode step.
 */
public final class Sampler {

	private final SamplingParams params;

	private final SplittableRandom random;

	private final int[] counts;

	private final boolean[] seenInPrompt;

	public Sampler(SamplingParams params, int vocabularySize, int[] prompt) {
		this.params = params;
		this.random = new SplittableRandom((params.seed() != null) ? params.seed() : System.nanoTime());
		this.counts = new int[vocabularySize];
		this.seenInPrompt = new boolean[vocabularySize];
		for (int token : prompt) {
			if (token >= 0 && token < vocabularySize) {
				this.seenInPrompt[token] = true;
			}
		}
	}

	/** Records a generated token (for the penalties). */
	public void accept(int token) {
		this.counts[token]++;
	}

	/**
	 * Chooses the next token; {@code logits} is modified. Non-finite values are handled,
	 * not propagated: NaN never wins, and tokens at +infinity (a penalty can push a logit
	 * there) share the draw among themselves.
	 * @throws IllegalStateException when no logit is above -infinity (every value NaN or
	 * -infinity: the model produced nothing to sample from)
	 */
	public int sample(float[] logits) {
		applyPenalties(logits);
		int best = -1;
		int infinite = 0;
		for (int i = 0; i < logits.length; i++) {
			if (Float.isNaN(logits[i])) {
				logits[i] = Float.NEGATIVE_INFINITY;
			}
			if (best < 0 || logits[i] > logits[best]) {
				best = i;
			}
			if (logits[i] == Float.POSITIVE_INFINITY) {
				infinite++;
			}
		}
		if (best < 0 || logits[best] == Float.NEGATIVE_INFINITY) {
			throw new IllegalStateException("no finite logit to sample from");
		}
		if (this.params.isGreedy()) {
			return best;
		}
		if (infinite > 0) {
			int pick = this.random.nextInt(infinite);
			for (int i = 0; i < logits.length; i++) {
				if (logits[i] == Float.POSITIVE_INFINITY && pick-- == 0) {
					return i;
				}
			}
		}
		int n = logits.length;
		float max = logits[best];
		double[] probabilities = new double[n];
		double sum = 0;
		for (int i = 0; i < n; i++) {
			probabilities[i] = Math.exp((logits[i] - max) / this.params.temperature());
			sum += probabilities[i];
		}
		Integer[] order = candidates(probabilities);
		// order: token ids by probability, descending, already cut to top-k
		int keep = order.length;
		double topProbability = probabilities[order[0]];
		double cumulative = 0;
		for (int i = 0; i < order.length; i++) {
			double p = probabilities[order[i]] / sum;
			if (this.params.minP() > 0 && probabilities[order[i]] < this.params.minP() * topProbability) {
				keep = i;
				break;
			}
			cumulative += p;
			if (cumulative >= this.params.topP()) {
				keep = i + 1;
				break;
			}
		}
		keep = Math.max(1, keep);
		double total = 0;
		for (int i = 0; i < keep; i++) {
			total += probabilities[order[i]];
		}
		double u = this.random.nextDouble() * total;
		for (int i = 0; i < keep; i++) {
			u -= probabilities[order[i]];
			if (u <= 0) {
				return order[i];
			}
		}
		return order[keep - 1];
	}

	private Integer[] candidates(double[] probabilities) {
		// Tokens below 1e-12 of the most likely one cannot change a draw measurably;
		// leaving them out keeps the sort to a few hundred candidates instead of the
		// whole vocabulary.
		int n = 0;
		Integer[] order = new Integer[probabilities.length];
		for (int i = 0; i < probabilities.length; i++) {
			if (probabilities[i] >= 1e-12) {
				order[n++] = i;
			}
		}
		order = Arrays.copyOf(order, n);
		Arrays.sort(order, (a, b) -> {
			int byProbability = Double.compare(probabilities[b], probabilities[a]);
			return (byProbability != 0) ? byProbability : Integer.compare(a, b);
		});
		int k = this.params.topK();
		return (k > 0 && k < n) ? Arrays.copyOf(order, k) : order;
	}

	private void applyPenalties(float[] logits) {
		double repetition = this.params.repetitionPenalty();
		double presence = this.params.presencePenalty();
		double frequency = this.params.frequencyPenalty();
		if (repetition == 1 && presence == 0 && frequency == 0) {
			return;
		}
		for (int token = 0; token < logits.length; token++) {
			int count = this.counts[token];
			double logit = logits[token];
			if (repetition != 1 && (count > 0 || this.seenInPrompt[token])) {
				logit = (logit > 0) ? logit / repetition : logit * repetition;
			}
			if (count > 0) {
				logit -= presence + frequency * count;
			}
			// in double, rounded once: past float's range is +-infinity
			logits[token] = (float) logit;
		}
	}

	/** log(sum(exp(logits))), computed from the largest logit so nothing overflows. */
	public static double logSumExp(float[] logits) {
		double max = Double.NEGATIVE_INFINITY;
		for (float logit : logits) {
			max = Math.max(max, logit);
		}
		double sum = 0;
		for (float logit : logits) {
			sum += Math.exp(logit - max);
		}
		return max + Math.log(sum);
	}

	public static int argmax(float[] values) {
		int best = 0;
		for (int i = 1; i < values.length; i++) {
			if (values[i] > values[best]) {
				best = i;
			}
		}
		return best;
	}

}

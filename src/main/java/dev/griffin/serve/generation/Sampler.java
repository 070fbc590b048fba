package dev.griffin.serve.generation;

import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: the request's logit bias, penalties, then greedy or
 * temperature with top-k, top-p and min-p filtering. Logits arrive as a Java array (one
 * copy from the device per step). A draw at temperature 1 over SmolLM2's 49,152 tokens
 * takes about 0.17 ms, the exponentials in the native {@link SamplingKernel}; only a cut
 * sorts, and then only the candidates it may keep.
 */
public final class Sampler {

	/**
	 * Tokens below this share of the most likely one's probability cannot change a draw
	 * measurably, and are never drawn.
	 */
	private static final double CANDIDATE = 1e-12;

	private final SamplingParams params;

	private final SplittableRandom random;

	private final int[] counts;

	private final boolean[] seenInPrompt;

	/** The biased tokens and their biases, in the same order. */
	private final int[] biased;

	private final float[] biases;

	/** The last draw's weights (none while every draw is greedy). */
	private float[] weights;

	/** The last cut's candidate ids (none until a draw cuts). */
	private int[] ids;

	/**
	 * @throws IllegalArgumentException when the logit bias names a token outside the
	 * vocabulary (requests are checked before they get here)
	 */
	public Sampler(SamplingParams params, int vocabularySize, int[] prompt) {
		this.params = params;
		this.biased = new int[params.logitBias().size()];
		this.biases = new float[this.biased.length];
		int i = 0;
		for (Map.Entry<Integer, Float> bias : params.logitBias().entrySet()) {
			if (bias.getKey() >= vocabularySize) {
				throw new IllegalArgumentException("logit bias for token %d outside the vocabulary of %d"
					.formatted(bias.getKey(), vocabularySize));
			}
			this.biased[i] = bias.getKey();
			this.biases[i++] = bias.getValue();
		}
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
		for (int i = 0; i < this.biased.length; i++) {
			logits[this.biased[i]] += this.biases[i];
		}
		applyPenalties(logits);
		int best = -1;
		float top = Float.NEGATIVE_INFINITY;
		int infinite = 0;
		for (int i = 0; i < logits.length; i++) {
			float logit = logits[i];
			if (logit > top) {
				top = logit;
				best = i;
			}
			else if (logit != logit) {
				// NaN never wins
				logits[i] = Float.NEGATIVE_INFINITY;
			}
			if (logit == Float.POSITIVE_INFINITY) {
				infinite++;
			}
		}
		if (best < 0) {
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
		float[] probabilities = weightBuffer(logits.length);
		double sum = exponentials(logits, logits[best], probabilities);
		if (this.params.topK() == 0 && this.params.topP() >= 1 && this.params.minP() == 0) {
			return draw(probabilities, sum);
		}
		int[] order = candidates(probabilities, sum);
		// order: token ids by probability, descending, already cut to top-k, holding at
		// least the tokens the cuts below keep
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

	/**
	 * A draw among every candidate, where no cut needs them in order: each token's share
	 * of the total is its own whatever the order, so the draw walks them by id (the
	 * weights below {@link #CANDIDATE} are 0).
	 * @param sum the weights' sum
	 */
	private int draw(float[] probabilities, double sum) {
		double u = this.random.nextDouble() * sum;
		int last = 0;
		for (int i = 0; i < probabilities.length; i++) {
			if (probabilities[i] > 0) {
				last = i;
				u -= probabilities[i];
				if (u <= 0) {
					return i;
				}
			}
		}
		// the sum's rounding may leave u just above 0 after the last candidate
		return last;
	}

	/**
	 * The candidates by probability, descending: the first of them in that order, enough
	 * to hold where top-k, top-p or min-p cuts, so that a draw at the usual settings
	 * sorts a few hundred tokens instead of the whole vocabulary. The tokens at or above
	 * a threshold are the first in the order; the threshold falls from 1e-2 of the most
	 * likely token's probability (which is 1) by factors of 100 until they hold the cut.
	 * @param sum every candidate's weight, summed
	 */
	private int[] candidates(float[] probabilities, double sum) {
		int n = 0;
		if (this.ids == null || this.ids.length != probabilities.length) {
			this.ids = new int[probabilities.length];
		}
		for (double threshold = 1e-2;; threshold *= 1e-2) {
			boolean last = threshold <= CANDIDATE;
			double floor = last ? CANDIDATE : threshold;
			n = 0;
			double mass = 0;
			for (int i = 0; i < probabilities.length; i++) {
				if (probabilities[i] >= floor) {
					this.ids[n++] = i;
					mass += probabilities[i];
				}
			}
			if (last || holdsTheCut(n, mass, sum, floor)) {
				break;
			}
		}
		// by probability, descending, then by id: a weight is a non-negative float, whose
		// bits order as its value, so one key per candidate sorts as primitives
		long[] keys = new long[n];
		for (int i = 0; i < n; i++) {
			int id = this.ids[i];
			keys[i] = ((long) (Integer.MAX_VALUE - Float.floatToIntBits(probabilities[id])) << 32) | id;
		}
		Arrays.sort(keys);
		int k = this.params.topK();
		int[] order = new int[(k > 0 && k < n) ? k : n];
		for (int i = 0; i < order.length; i++) {
			order[i] = (int) keys[i];
		}
		return order;
	}

	/**
	 * Whether the {@code n} tokens at or above {@code floor}, of {@code mass} of the
	 * {@code sum}, are sure to hold where the cuts stop: top-k within them, min-p at or
	 * below them, or top-p reached inside them (with a margin for the sums' rounding).
	 */
	private boolean holdsTheCut(int n, double mass, double sum, double floor) {
		int k = this.params.topK();
		return (k > 0 && n >= k) || (this.params.minP() > 0 && floor <= this.params.minP())
				|| (this.params.topP() < 1 && mass >= this.params.topP() * sum * (1 + 1e-9));
	}

	/** The draw's weights, an array kept for the sequence's draws. */
	private float[] weightBuffer(int n) {
		if (this.weights == null || this.weights.length != n) {
			this.weights = new float[n];
		}
		return this.weights;
	}

	/**
	 * Each token's weight in a draw, exp((logit - max) / temperature), into
	 * {@code weights}, 0 below {@link #CANDIDATE}; returns their sum.
	 */
	private double exponentials(float[] logits, float max, float[] weights) {
		return weights(logits, max, (float) (1 / this.params.temperature()), weights, NATIVE);
	}

	/**
	 * exp((logit - max) * scale) for each logit, into {@code weights}, 0 where the
	 * exponent is below that of {@link #CANDIDATE}; returns their sum. The native
	 * {@link SamplingKernel} ({@code vector}; about six times faster over SmolLM2's
	 * vocabulary) or {@link Math#exp}: the two differ by about a float's rounding.
	 */
	static double weights(float[] logits, float max, float scale, float[] weights, boolean vector) {
		if (vector) {
			return SamplingKernel.exponentials(logits, weights, max, scale, LOWEST);
		}
		double sum = 0;
		for (int i = 0; i < logits.length; i++) {
			float x = (logits[i] - max) * scale;
			weights[i] = (x >= LOWEST) ? (float) Math.exp(x) : 0;
			sum += weights[i];
		}
		return sum;
	}

	/** The exponent of {@link #CANDIDATE}. */
	private static final float LOWEST = (float) Math.log(CANDIDATE);

	/** Whether the native kernels compute the weights (where they can run). */
	static final boolean NATIVE = SamplingKernel.UNAVAILABLE == null;

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

	/**
	 * {@link #logSumExp(float[])} with the exponentials in the native
	 * {@link SamplingKernel} where it runs (the same within about a float's rounding:
	 * each term within two ulps, added in double), into {@code scratch} (at least as long
	 * as the logits). Logits with a NaN or no finite largest value take the plain path,
	 * which says so in its result.
	 */
	static double logSumExp(float[] logits, float[] scratch) {
		if (!NATIVE) {
			return logSumExp(logits);
		}
		float max = Float.NEGATIVE_INFINITY;
		for (float logit : logits) {
			if (logit > max) {
				max = logit;
			}
			else if (logit != logit) {
				return logSumExp(logits);
			}
		}
		if (Float.isInfinite(max)) {
			return logSumExp(logits);
		}
		// every exponent above the kernel's floor (-87) counts
		return max + Math.log(SamplingKernel.exponentials(logits, scratch, max, 1, -Float.MAX_VALUE));
	}

	/**
	 * The ids of the {@code k} largest values (fewer when fewer are not NaN), largest
	 * first, the lower id first among equal values: one pass, each value compared with
	 * the k-th largest so far.
	 */
	static int[] largest(float[] values, int k) {
		if (k <= 0) {
			return new int[0];
		}
		int[] ids = new int[k];
		int n = 0;
		for (int i = 0; i < values.length; i++) {
			float value = values[i];
			if (n == k && !(value > values[ids[k - 1]])) {
				continue;
			}
			if (value != value) {
				continue;
			}
			// after every kept value at least as large: equal values keep their id order
			int at = (n < k) ? n++ : k - 1;
			while (at > 0 && value > values[ids[at - 1]]) {
				ids[at] = ids[at - 1];
				at--;
			}
			ids[at] = i;
		}
		return (n == k) ? ids : Arrays.copyOf(ids, n);
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

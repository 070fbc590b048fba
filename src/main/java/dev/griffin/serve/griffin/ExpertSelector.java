package dev.griffin.serve.griffin;

import java.util.Arrays;
import java.util.SplittableRandom;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;

/**
 * GRIFFIN's expert selection (Dong, Chen, Chi, "Prompt-prompted Adaptive Structured
 * Pruning for Efficient LLM Generation", COLM 2024, arXiv 2404.01365), as pure functions.
 * <p>
 * For prompt activations Z [T, F] of one layer, each token is normalised over neurons,
 * {@code Zbar_t = Z_t / ||Z_t||_2}, and each neuron scored by
 * {@code s_j = ||Zbar[:, j]||_2}. The statistic is kept as
 * {@code s_j^2 = sum_t Zbar[t, j]^2}, which is additive over tokens: a prompt processed
 * in chunks, or extended from a cached prefix, gives the same s.
 */
public final class ExpertSelector {

	private ExpertSelector() {
	}

	/**
	 * The additive statistic of a block of tokens: {@code sum_t (Z_t / ||Z_t||)^2}, in
	 * float64.
	 * @param z [T, F] activations
	 * @return [F] sums of squares
	 */
	public static double[] sumOfSquares(NDArray z) {
		// Row-wise work in float32 (cheap, and independent of how the prompt is chunked);
		// the sum over tokens in float64, so that chunked and one-shot prefill accumulate
		// the same values. [T, F]
		NDArray z32 = (z.getDataType() == DataType.FLOAT32) ? z : z.toType(DataType.FLOAT32, false);
		NDArray squares = z32.square(); // [T, F]
		// [T, 1]
		NDArray norms = squares.sum(new int[] { 1 }, true).maximum(Float.MIN_NORMAL);
		NDArray normalised = squares.div(norms); // [T, F]: Zbar^2
		return normalised.toType(DataType.FLOAT64, false).sum(new int[] { 0 }).toDoubleArray(); // [F]
	}

	/**
	 * Picks k of the F neurons from s^2 (ascending indices), or from the scores a method
	 * derives from it ({@code wina}, {@code glass}, {@code magnitude}: the largest k).
	 * Scores that tie are broken towards the lower index. {@code random} may be null for
	 * the methods that do not sample.
	 */
	public static int[] select(double[] sumOfSquares, int k, SelectionMethod method, SplittableRandom random) {
		int f = sumOfSquares.length;
		if (k < 0 || k > f) {
			throw new IllegalArgumentException("k must be in [0, %d], got %d".formatted(f, k));
		}
		int[] selected = switch (method) {
			case TOPK, MAGNITUDE, WINA, GLASS, LAYERWISE -> top(sumOfSquares, k);
			case SAMPLE -> sample(sumOfSquares, k, new boolean[f], random);
			case TOPK_SAMPLE -> {
				int[] head = top(sumOfSquares, k / 2);
				boolean[] taken = new boolean[f];
				for (int index : head) {
					taken[index] = true;
				}
				int[] tail = sample(sumOfSquares, k - head.length, taken, random);
				int[] both = Arrays.copyOf(head, k);
				System.arraycopy(tail, 0, both, head.length, tail.length);
				yield both;
			}
			case RANDOM -> sample(new double[f], k, new boolean[f], random);
		};
		Arrays.sort(selected);
		return selected;
	}

	/** Indices of the k largest values, larger first, ties to the lower index. */
	public static int[] top(double[] values, int k) {
		Integer[] order = new Integer[values.length];
		for (int i = 0; i < order.length; i++) {
			order[i] = i;
		}
		Arrays.sort(order, (a, b) -> {
			int byValue = Double.compare(values[b], values[a]);
			return (byValue != 0) ? byValue : Integer.compare(a, b);
		});
		int[] result = new int[k];
		for (int i = 0; i < k; i++) {
			result[i] = order[i];
		}
		return result;
	}

	/**
	 * k indices not yet taken, drawn without replacement with probability proportional to
	 * sqrt(sumOfSquares) = s (uniform when all weights are zero), by Efraimidis-Spirakis
	 * keys {@code u^(1/w)}.
	 */
	static int[] sample(double[] sumOfSquares, int k, boolean[] taken, SplittableRandom random) {
		if (random == null) {
			throw new IllegalArgumentException("sampling methods need a random source");
		}
		int f = sumOfSquares.length;
		double[] keys = new double[f];
		boolean uniform = Arrays.stream(sumOfSquares).allMatch((v) -> v == 0);
		for (int j = 0; j < f; j++) {
			double weight = uniform ? 1 : Math.sqrt(sumOfSquares[j]);
			double u = random.nextDouble();
			// taken neurons rank below zero-weight ones, which rank below every positive
			// weight
			keys[j] = taken[j] ? Double.NEGATIVE_INFINITY : (weight <= 0) ? -Double.MAX_VALUE : Math.log(u) / weight;
		}
		return top(keys, k);
	}

}

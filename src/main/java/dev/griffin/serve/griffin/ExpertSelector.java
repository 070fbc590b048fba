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
		checkCount(f, k);
		int[] selected = switch (method) {
			case TOPK, MAGNITUDE, WINA, GLASS, LAYERWISE, DELAYED, DENSE_START -> largest(sumOfSquares, k);
			case SAMPLE -> sample(sumOfSquares, k, new boolean[f], random);
			case TOPK_SAMPLE -> {
				int[] head = largest(sumOfSquares, k / 2);
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

	private static void checkCount(int n, int k) {
		if (k < 0 || k > n) {
			throw new IllegalArgumentException("k must be in [0, %d], got %d".formatted(n, k));
		}
	}

	/**
	 * The indices {@link #top} picks, in ascending order, without ordering them by value:
	 * every value above the k-th largest, then those equal to it from the lowest index
	 * (values ordered as {@link Double#compare} orders them). One sort of a copy of the
	 * values on primitive arrays: sorting boxed indices with a comparator, as selection
	 * did, took 0.7-1.5 ms per layer of 1536 neurons on a 2-core machine, 21-44 ms for
	 * SmolLM2's 30 layers at the end of every prompt.
	 */
	public static int[] largest(double[] values, int k) {
		int n = values.length;
		checkCount(n, k);
		if (k == 0) {
			return new int[0];
		}
		double[] sorted = values.clone();
		Arrays.sort(sorted);
		double threshold = sorted[n - k];
		// how many of the k largest equal the k-th: the run of it from n - k up
		int ties = 1;
		for (int i = n - k + 1; i < n && Double.compare(sorted[i], threshold) == 0; i++) {
			ties++;
		}
		int[] chosen = new int[k];
		int count = 0;
		for (int i = 0; i < n; i++) {
			int byValue = Double.compare(values[i], threshold);
			if (byValue > 0 || (byValue == 0 && ties-- > 0)) {
				chosen[count++] = i;
			}
		}
		return chosen;
	}

	/**
	 * Indices of the k largest values, larger first, ties to the lower index (values
	 * ordered as {@link Double#compare} orders them): a stable merge sort of the indices.
	 */
	public static int[] top(double[] values, int k) {
		int n = values.length;
		checkCount(n, k);
		int[] order = new int[n];
		for (int i = 0; i < n; i++) {
			order[i] = i;
		}
		int[] merged = new int[n];
		for (int width = 1; width < n; width *= 2) {
			for (int low = 0; low < n - width; low += 2 * width) {
				merge(values, order, merged, low, low + width, Math.min(low + 2 * width, n));
			}
		}
		return Arrays.copyOf(order, k);
	}

	/**
	 * Merges the runs [low, middle) and [middle, high) of {@code order}, each sorted by
	 * value descending, taking from the first run on ties (stable).
	 */
	private static void merge(double[] values, int[] order, int[] merged, int low, int middle, int high) {
		int left = low;
		int right = middle;
		int out = low;
		while (left < middle && right < high) {
			merged[out++] = (Double.compare(values[order[right]], values[order[left]]) > 0) ? order[right++]
					: order[left++];
		}
		System.arraycopy(order, left, merged, out, middle - left);
		out += middle - left;
		System.arraycopy(order, right, merged, out, high - right);
		System.arraycopy(merged, low, order, low, high - low);
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
		return largest(keys, k);
	}

}

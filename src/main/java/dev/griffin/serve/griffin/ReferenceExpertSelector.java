package dev.griffin.serve.griffin;

/**
 * The naive oracle for {@link ExpertSelector}: GRIFFIN's statistic in plain
 * double-precision loops over a Java matrix, written straight from the formula
 * {@code s_j^2 = sum_t (Z[t, j] / ||Z[t, :]||_2)^2} (Dong et al. 2024, eq. 3).
 */
public final class ReferenceExpertSelector {

	private ReferenceExpertSelector() {
	}

	/** z: [T][F] -> s^2: [F]. */
	public static double[] sumOfSquares(float[][] z) {
		int f = z[0].length;
		double[] s2 = new double[f];
		for (float[] token : z) {
			double norm = 0;
			for (float value : token) {
				norm += (double) value * value;
			}
			norm = Math.sqrt(norm);
			for (int j = 0; j < f; j++) {
				double normalised = (norm > 0) ? token[j] / norm : 0;
				s2[j] += normalised * normalised;
			}
		}
		return s2;
	}

	/** The top-k experts of activations z: [T][F], ascending. */
	public static int[] selectTopK(float[][] z, int k) {
		return ExpertSelector.select(sumOfSquares(z), k, SelectionMethod.TOPK, null);
	}

}

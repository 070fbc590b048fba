package dev.griffin.serve.analysis;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** The divergence and the statistics of the fidelity measure. */
class FidelityEvalTests {

	@Test
	void divergenceIsKullbackLeiblerOfTheSoftmaxes() {
		float[] p = { 1f, 2f, 3f };
		assertThat(FidelityEval.divergence(p, p)).isZero();
		assertThat(FidelityEval.divergence(p, new float[] { 11f, 12f, 13f })).as("a shift changes nothing")
			.isCloseTo(0, within(1e-12));
		// p = softmax(0, ln 3) = (1/4, 3/4), q = (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4
		// ln(3/2)
		double expected = 0.25 * Math.log(0.5) + 0.75 * Math.log(1.5);
		assertThat(FidelityEval.divergence(new float[] { 0f, (float) Math.log(3) }, new float[] { 5f, 5f }))
			.isCloseTo(expected, within(1e-6));
		assertThat(FidelityEval.divergence(new float[] { 0f, -200f }, new float[] { -200f, 0f })).as("large but finite")
			.isCloseTo(200, within(1e-3));
	}

	@Test
	void theStandardErrorIsTheSampleDeviationOverRootN() {
		double[] values = { 1, 2, 3, 4 };
		assertThat(FidelityEval.mean(values)).isEqualTo(2.5);
		// sample variance 5/3, n = 4
		assertThat(FidelityEval.standardError(values)).isCloseTo(Math.sqrt(5.0 / 3 / 4), within(1e-12));
		assertThat(FidelityEval.standardError(new double[] { 7 })).isZero();
	}

}

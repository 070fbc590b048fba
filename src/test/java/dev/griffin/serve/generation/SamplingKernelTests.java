package dev.griffin.serve.generation;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

class SamplingKernelTests {

	/**
	 * A draw's weights are the same, bit for bit, from the AVX2 and the AVX-512 form
	 * (whichever this CPU runs: AVX2 always on a machine that runs the library), so the
	 * same logits give the same draw on either; each is exp within two ulps, and 0 below
	 * the floor.
	 */
	@Test
	void exponentialsAreOneFunctionOnEveryInstructionSet() throws IOException {
		assertThat(SamplingKernel.UNAVAILABLE).isNull();
		boolean avx512 = Files.readString(Path.of("/proc/cpuinfo")).contains(" avx512f");
		SplittableRandom random = new SplittableRandom(29);
		for (int n : new int[] { 0, 1, 7, 16, 31, 33, 1000, 49_157 }) {
			for (float scale : new float[] { 0.5f, 1f, 3.3f, 1e4f }) {
				float[] logits = new float[n];
				for (int i = 0; i < n; i++) {
					logits[i] = (i % 37 == 5) ? Float.NEGATIVE_INFINITY : (float) (random.nextGaussian() * 8);
				}
				float max = 0;
				for (float logit : logits) {
					max = Math.max(max, logit);
				}
				float lowest = -27.6f;
				float[] avx2 = new float[n];
				double sum = SamplingKernel.exponentials(logits, avx2, max, scale, lowest, 2);
				double plain = 0;
				for (int i = 0; i < n; i++) {
					float x = (logits[i] - max) * scale;
					if (x < lowest) {
						assertThat(avx2[i]).as("n %d, scale %s, token %d", n, scale, i).isZero();
					}
					else {
						double exact = Math.exp(x);
						assertThat((double) avx2[i]).as("n %d, scale %s, token %d", n, scale, i)
							.isCloseTo(exact, within(2.0 * Math.ulp((float) exact)));
					}
					plain += avx2[i];
				}
				assertThat(sum).isCloseTo(plain, within(1e-12 * Math.max(1, plain)));
				float[] wide = new float[n];
				if (avx512) {
					assertThat(SamplingKernel.exponentials(logits, wide, max, scale, lowest, 3)).isEqualTo(sum);
					assertThat(wide).as("n %d, scale %s", n, scale).containsExactly(avx2);
				}
				else {
					float peak = max;
					assertThatThrownBy(() -> SamplingKernel.exponentials(logits, wide, peak, scale, lowest, 3))
						.isInstanceOf(UnsupportedOperationException.class);
				}
			}
		}
		// the floor is never below -87, where 2^n would leave float's normal range
		float[] far = new float[1];
		SamplingKernel.exponentials(new float[] { -100 }, far, 0, 1, -1000);
		assertThat(far[0]).isZero();
	}

}

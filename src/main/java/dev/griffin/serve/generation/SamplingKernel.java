package dev.griffin.serve.generation;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The native library's sampling kernel ({@code griffin_exponentials} in
 * {@code src/main/native/griffin_kernels.c}): a draw's weights, 16 exponentials at a
 * time. It needs the library and a CPU with AVX2 and FMA, but neither libtorch nor the
 * products' thread team ({@code model.NativeKernels}), so it binds on its own.
 */
final class SamplingKernel {

	/** Why the kernel cannot run here, or null when it can. */
	static final String UNAVAILABLE;

	static {
		String why = null;
		try {
			Native.register(SamplingKernel.class, NativeLibrary.getInstance("griffin_kernels"));
			if (griffin_exponentials(new float[0], new float[0], 0, 0, 1, 0, 0) < 0) {
				why = "this CPU lacks AVX2 or FMA";
			}
		}
		catch (LinkageError | RuntimeException ex) {
			// JNA or the library missing or broken (as an earlier failed load leaves
			// JNA's classes): draws fall back to Math.exp rather than fail
			why = "the native library did not load (" + ex + ")";
		}
		UNAVAILABLE = why;
		Logger logger = LoggerFactory.getLogger(SamplingKernel.class);
		if (why == null) {
			logger.info("sampling: a draw's exponentials in the native kernel");
		}
		else {
			logger.warn("sampling: a draw's exponentials in Java (Math.exp), about six times slower: {}", why);
		}
	}

	private SamplingKernel() {
	}

	/**
	 * A draw's weights, on the calling thread alone: {@code weights[i] = exp(x)} for
	 * {@code x = (logits[i] - max) * scale}, as float, each within about one ulp, and 0
	 * where x is below {@code lowest} (or -87); returns their sum. The AVX2 and AVX-512
	 * forms give the same values and sum, so the same logits give the same draw on
	 * either.
	 * @param logits none NaN and none above {@code max}
	 * @param scale one over the temperature, above 0
	 */
	static double exponentials(float[] logits, float[] weights, float max, float scale, float lowest) {
		return exponentials(logits, weights, max, scale, lowest, 0);
	}

	/**
	 * {@link #exponentials(float[], float[], float, float, float)} by one instruction
	 * set: 2 (AVX2), 3 (AVX-512), 0 the CPU's. For tests.
	 * @throws UnsupportedOperationException when the CPU lacks it
	 */
	static double exponentials(float[] logits, float[] weights, float max, float scale, float lowest, int isa) {
		if (UNAVAILABLE != null) {
			throw new IllegalStateException("the native sampling kernel cannot run: " + UNAVAILABLE);
		}
		if (weights.length < logits.length) {
			throw new IllegalArgumentException("%d weights for %d logits".formatted(weights.length, logits.length));
		}
		double sum = griffin_exponentials(logits, weights, logits.length, max, scale, lowest, isa);
		if (sum < 0) {
			throw new UnsupportedOperationException("this CPU lacks instruction set level " + isa);
		}
		return sum;
	}

	private static native double griffin_exponentials(float[] logits, float[] weights, int n, float max, float scale,
			float lowest, int isa);

}

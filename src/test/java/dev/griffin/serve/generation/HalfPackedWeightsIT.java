package dev.griffin.serve.generation;

import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.model.Kernels;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The default model in float16: the packed copies stay for the layer decode form, which
 * then decodes as the pool form does within float16's rounding, and are freed for any
 * other plan.
 */
class HalfPackedWeightsIT {

	@Test
	void copiesStayForTheLayerFormOnlyAndKeepItsLogits() {
		int[] prompt = { 504, 3458, 282, 4649, 314, 2246, 30, 378, 3458, 282, 4649, 314 };
		float[][] pool;
		try (LoadedModel loaded = LoadedModel.load(Fixtures.defaultModel(),
				new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu", Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS),
				(layers) -> {
				})) {
			assertThat(loaded.dense().kernels().packed().size()).as("freed: pool reads no float16 copy").isZero();
			pool = steps(loaded, prompt);
		}
		try (LoadedModel loaded = LoadedModel.load(Fixtures.defaultModel(),
				new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu", Kernels.Decode.LAYER, Kernels.Prefill.WEIGHTS),
				(layers) -> {
				})) {
			int layers = loaded.dense().config().numberOfLayers();
			assertThat(loaded.dense().kernels().packed().size()).as("the layers' four matrices and the head")
				.isEqualTo(4 * layers + 1);
			float[][] layer = steps(loaded, prompt);
			for (int step = 0; step < pool.length; step++) {
				double worst = 0;
				double range = 0;
				for (int v = 0; v < pool[step].length; v++) {
					worst = Math.max(worst, Math.abs(layer[step][v] - pool[step][v]));
					range = Math.max(range, Math.abs(pool[step][v]));
				}
				assertThat(worst).as("step %d, logits up to %.2f", step, range).isLessThanOrEqualTo(1e-2 * range);
				assertThat(Sampler.argmax(layer[step])).as("step %d", step).isEqualTo(Sampler.argmax(pool[step]));
			}
		}
	}

	/** The logits of 8 greedy decode steps after the prompt. */
	private static float[][] steps(LoadedModel loaded, int[] prompt) {
		float[][] logits = new float[8][];
		try (InferenceSession session = new InferenceSession(loaded.dense(), prompt.length + 8)) {
			float[] last = session.prefill(prompt, prompt.length);
			for (int i = 0; i < logits.length; i++) {
				last = session.decode(Sampler.argmax(last));
				logits[i] = last;
			}
		}
		return logits;
	}

}

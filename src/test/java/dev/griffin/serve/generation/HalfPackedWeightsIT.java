package dev.griffin.serve.generation;

import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.model.Kernels;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.model.PackedWeights;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The default model in float16: the packed copies stay for the layer decode form (where
 * oneDNN packs float16: CPUs with AVX-512), which then decodes as the pool form does
 * within float16's rounding, and are freed for any other plan; the native form decodes as
 * the pool form does too.
 */
class HalfPackedWeightsIT {

	@Test
	void copiesStayForTheLayerFormOnlyAndTheLayerAndNativeFormsKeepTheLogits() {
		int[] prompt = { 504, 3458, 282, 4649, 314, 2246, 30, 378, 3458, 282, 4649, 314 };
		float[][] pool;
		try (LoadedModel loaded = LoadedModel.load(Fixtures.defaultModel(),
				new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu", Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS),
				(layers) -> {
				})) {
			assertThat(loaded.dense().kernels().packed().size()).as("freed: pool reads no float16 copy").isZero();
			pool = steps(loaded, prompt);
		}
		for (Kernels.Decode form : new Kernels.Decode[] { Kernels.Decode.LAYER, Kernels.Decode.NATIVE }) {
			try (LoadedModel loaded = LoadedModel.load(Fixtures.defaultModel(),
					new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu", form, Kernels.Prefill.WEIGHTS),
					(layers) -> {
					})) {
				int layers = loaded.dense().config().numberOfLayers();
				boolean copies = form == Kernels.Decode.LAYER && PackedWeights.packsHalf();
				assertThat(loaded.dense().kernels().packed().size())
					.as("%s: the layers' four matrices and the head", form)
					.isEqualTo(copies ? 4 * layers + 1 : 0);
				float[][] logits = steps(loaded, prompt);
				for (int step = 0; step < pool.length; step++) {
					double worst = 0;
					double range = 0;
					for (int v = 0; v < pool[step].length; v++) {
						worst = Math.max(worst, Math.abs(logits[step][v] - pool[step][v]));
						range = Math.max(range, Math.abs(pool[step][v]));
					}
					assertThat(worst).as("%s step %d, logits up to %.2f", form, step, range)
						.isLessThanOrEqualTo(1e-2 * range);
					assertThat(Sampler.argmax(logits[step])).as("%s step %d", form, step)
						.isEqualTo(Sampler.argmax(pool[step]));
				}
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

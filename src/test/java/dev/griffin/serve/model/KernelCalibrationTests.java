package dev.griffin.serve.model;

import java.util.LinkedHashMap;
import java.util.Map;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class KernelCalibrationTests {

	@Test
	void theFastestMatchingFormWinsAndTheNativePrefillWithinItsMargin() {
		Map<Kernels.Prefill, Double> times = new LinkedHashMap<>();
		times.put(Kernels.Prefill.WEIGHTS, 84.3);
		times.put(Kernels.Prefill.ONEDNN, 67.5);
		times.put(Kernels.Prefill.NATIVE, 68.4);
		assertThat(KernelCalibration.pick(times, null, 0)).isEqualTo(Kernels.Prefill.ONEDNN);
		assertThat(KernelCalibration.pick(times, Kernels.Prefill.NATIVE, KernelCalibration.SHARED_PASS_MARGIN))
			.as("1.3% slower: its shared passes outweigh that")
			.isEqualTo(Kernels.Prefill.NATIVE);

		times.put(Kernels.Prefill.NATIVE, 67.5 * (1 + KernelCalibration.SHARED_PASS_MARGIN) * 1.001);
		assertThat(KernelCalibration.pick(times, Kernels.Prefill.NATIVE, KernelCalibration.SHARED_PASS_MARGIN))
			.as("past the margin")
			.isEqualTo(Kernels.Prefill.ONEDNN);

		times.put(Kernels.Prefill.NATIVE, 60.0);
		assertThat(KernelCalibration.pick(times, Kernels.Prefill.NATIVE, KernelCalibration.SHARED_PASS_MARGIN))
			.isEqualTo(Kernels.Prefill.NATIVE);

		// a form whose logits did not match is not among the times: the preferred one
		// missing leaves the fastest
		times.remove(Kernels.Prefill.NATIVE);
		assertThat(KernelCalibration.pick(times, Kernels.Prefill.NATIVE, KernelCalibration.SHARED_PASS_MARGIN))
			.isEqualTo(Kernels.Prefill.ONEDNN);
		assertThat(KernelCalibration.pick(Map.of(Kernels.Decode.POOL, 30.0), null, 0)).isEqualTo(Kernels.Decode.POOL);
	}

	@Test
	void theNativeDecodeFormWinsWithinItsMargin() {
		Map<Kernels.Decode, Double> times = new LinkedHashMap<>();
		times.put(Kernels.Decode.POOL, 239.4);
		times.put(Kernels.Decode.LAYER, 219.4);
		times.put(Kernels.Decode.NATIVE, 221.0);
		assertThat(KernelCalibration.pick(times, Kernels.Decode.NATIVE, KernelCalibration.BATCHED_STEP_MARGIN))
			.as("0.7% slower for one row, far faster for a batch")
			.isEqualTo(Kernels.Decode.NATIVE);
		times.put(Kernels.Decode.NATIVE, 219.4 * (1 + KernelCalibration.BATCHED_STEP_MARGIN) * 1.001);
		assertThat(KernelCalibration.pick(times, Kernels.Decode.NATIVE, KernelCalibration.BATCHED_STEP_MARGIN))
			.as("past the margin")
			.isEqualTo(Kernels.Decode.LAYER);
		String kept = new KernelCalibration.Result(new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.NATIVE, 2),
				Map.of(Kernels.Decode.LAYER, 219.4, Kernels.Decode.NATIVE, 221.0), Map.of())
			.toString();
		assertThat(kept).contains("native kept within 15% of the fastest: it runs a batch's step in its own rows");
		String fastest = new KernelCalibration.Result(new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.NATIVE, 2),
				Map.of(Kernels.Decode.LAYER, 229.4, Kernels.Decode.NATIVE, 221.0), Map.of())
			.toString();
		assertThat(fastest).doesNotContain("kept within");
	}

	@Test
	void theLogSaysWhenTheNativePrefillWasKeptThoughSlower() {
		Map<Kernels.Prefill, Double> times = new LinkedHashMap<>();
		times.put(Kernels.Prefill.ONEDNN, 71.5);
		times.put(Kernels.Prefill.NATIVE, 75.5);
		String kept = new KernelCalibration.Result(new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.NATIVE, 2),
				Map.of(), times)
			.toString();
		assertThat(kept).contains("onednn 71.5, native 75.5")
			.contains("native kept within 15% of the fastest: its passes run several sequences' prompts");
		String fastest = new KernelCalibration.Result(new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.ONEDNN, 2),
				Map.of(), times)
			.toString();
		assertThat(fastest).doesNotContain("kept within");
	}

}

package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.generation.InferenceSession;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The kernel forms compute the same products, calibration measures every candidate and
 * keeps a forced choice, and the helper thread's failures reach the caller.
 */
class KernelsTests {

	private static NDManager manager;

	@BeforeAll
	static void start() {
		manager = NDManager.newBaseManager();
	}

	@AfterAll
	static void stop() {
		manager.close();
	}

	private static CausalLm load(String name, ModelOptions options) {
		return TinyModelGoldenTests.load(name, options, manager);
	}

	@Test
	void splitFeedForwardEqualsTheWholeBlock() {
		try (NDScope scope = new NDScope()) {
			int d = 24;
			int f = 37; // odd: the halves are 18 and 19 neurons
			NDArray gateUp = manager.randomNormal(new Shape(2L * f, d));
			NDArray down = manager.randomNormal(new Shape(d, f));
			FeedForward.Weights weights = new FeedForward.Weights(gateUp, down, f, HiddenActivation.SILU);
			NDArray x = manager.randomNormal(new Shape(1, d));
			float[] whole = new Kernels(Kernels.Decode.SINGLE, Kernels.Prefill.WEIGHTS, 1).feedForward(x, weights)
				.toFloatArray();
			float[] split = new Kernels(Kernels.Decode.SPLIT, Kernels.Prefill.WEIGHTS, 1).feedForward(x, weights)
				.toFloatArray();
			assertThat(split).hasSameSizeAs(whole);
			assertThat(KernelCalibration.difference(whole, split)).isLessThan(1e-5);
		}
	}

	@Test
	void gatheredExpertsAreWhatIndexSelectCopies() {
		try (NDScope scope = new NDScope()) {
			int d = 13;
			int f = 40;
			int[] neurons = { 39, 0, 17, 5, 18, 38, 2 }; // any order, the ends included
			long[] rows = new long[neurons.length];
			for (int i = 0; i < neurons.length; i++) {
				rows[i] = neurons[i];
			}
			for (DataType type : new DataType[] { DataType.FLOAT32, DataType.FLOAT16 }) {
				NDArray gateUp = manager.randomNormal(new Shape(2L * f, d)).toType(type, false);
				NDArray down = manager.randomNormal(new Shape(d, f)).toType(type, false);
				NDArray index = manager.create(rows);
				NDArray wantRows = Kernels.select(gateUp, 0, index.concat(index.add(f)));
				NDArray wantColumns = Kernels.select(down, 1, index);
				NDArray[] got = Kernels.gatherExperts(gateUp, down, neurons, manager);
				assertThat(got[0].getDataType()).isEqualTo(type);
				assertThat(got[0].getShape()).isEqualTo(new Shape(2L * neurons.length, d));
				assertThat(got[1].getShape()).isEqualTo(new Shape(d, neurons.length));
				assertThat(got[0].toType(DataType.FLOAT32, false).toFloatArray())
					.containsExactly(wantRows.toType(DataType.FLOAT32, false).toFloatArray());
				assertThat(got[1].toType(DataType.FLOAT32, false).toFloatArray())
					.containsExactly(wantColumns.toType(DataType.FLOAT32, false).toFloatArray());
				got[0].close();
				got[1].close();
			}
			assertThatThrownBy(() -> NativeKernels.gather(manager.zeros(new Shape(8, 3)),
					manager.zeros(new Shape(3, 4)), new int[] { 4 }, manager))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("outside");
		}
	}

	@Test
	void float32PrefillOfHalfWeightsKeepsTheirType() {
		try (NDScope scope = new NDScope()) {
			NDArray w = manager.randomNormal(new Shape(16, 8)).toType(DataType.FLOAT16, false);
			NDArray x = manager.randomNormal(new Shape(5, 8)).toType(DataType.FLOAT16, false);
			NDArray wide = new Kernels(Kernels.Decode.POOL, Kernels.Prefill.FLOAT32, 1).linear(x, w, null);
			NDArray native16 = new Kernels(Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS, 1).linear(x, w, null);
			assertThat(wide.getDataType()).isEqualTo(DataType.FLOAT16);
			assertThat(wide.getShape()).isEqualTo(new Shape(5, 16));
			float[] a = native16.toType(DataType.FLOAT32, false).toFloatArray();
			float[] b = wide.toType(DataType.FLOAT32, false).toFloatArray();
			assertThat(KernelCalibration.difference(a, b)).isLessThan(5e-3);
		}
	}

	/**
	 * The bfloat16 form rounds a prompt's products (bfloat16 keeps 8 significant bits: a
	 * few 1e-3 of a product's range), returns the activations' type, converts weights of
	 * more than one block (8Mi elements) a block of rows at a time and in order, and
	 * leaves one-token products to the weights' own form.
	 */
	@Test
	void bfloat16PrefillRoundsPromptProductsOnly() {
		Kernels rounded = new Kernels(Kernels.Decode.POOL, Kernels.Prefill.BFLOAT16, 1);
		Kernels exact = new Kernels(Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS, 1);
		for (long[] shape : new long[][] { { 96, 64 }, { 4097, 2048 } }) {
			try (NDScope scope = new NDScope()) {
				NDArray w = manager.randomNormal(new Shape(shape));
				NDArray b = manager.randomNormal(new Shape(shape[0]));
				NDArray x = manager.randomNormal(new Shape(5, shape[1]));
				for (DataType type : new DataType[] { DataType.FLOAT32, DataType.FLOAT16 }) {
					NDArray wt = w.toType(type, false);
					NDArray xt = x.toType(type, false);
					for (NDArray bias : new NDArray[] { null, b.toType(type, false) }) {
						NDArray got = rounded.linear(xt, wt, bias);
						assertThat(got.getDataType()).isEqualTo(type);
						assertThat(got.getShape()).isEqualTo(new Shape(5, shape[0]));
						float[] want = exact.linear(x, w, (bias == null) ? null : b).toFloatArray();
						double difference = KernelCalibration.difference(want,
								got.toType(DataType.FLOAT32, false).toFloatArray());
						assertThat(difference)
							.as("%s %s, bias %s", type, java.util.Arrays.toString(shape), bias != null)
							.isBetween(1e-4, 1e-2);
					}
				}
				NDArray one = x.get("0:1");
				assertThat(rounded.linear(one, w, b).toFloatArray())
					.containsExactly(exact.linear(one, w, b).toFloatArray());
			}
		}
	}

	@Test
	void aFailureOnTheHelperReachesTheCaller() {
		try (NDScope scope = new NDScope()) {
			NDArray x = manager.ones(new Shape(1, 4));
			assertThatThrownBy(() -> HelperThread.both(() -> x.add(1), () -> {
				throw new IllegalStateException("helper half failed");
			})).isInstanceOf(IllegalStateException.class).hasMessage("helper half failed");
			// and the helper keeps working afterwards
			NDArray[] both = HelperThread.both(() -> x.add(1), () -> x.add(2));
			assertThat(both[0].toFloatArray()).containsOnly(2f);
			assertThat(both[1].toFloatArray()).containsOnly(3f);
		}
	}

	@Test
	void calibrationTimesEveryCandidateAndKeepsForcedForms() {
		CausalLm model = load("tiny-llama", new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu"));
		try {
			KernelCalibration.Result measured = KernelCalibration.choose(model, null, null);
			// oneDNN's inner product takes float32 weights only; the layer and native
			// forms take float16 too
			assertThat(measured.decodeMillis()).containsOnlyKeys(Kernels.Decode.POOL, Kernels.Decode.SINGLE,
					Kernels.Decode.SPLIT, Kernels.Decode.LAYER, Kernels.Decode.NATIVE);
			assertThatThrownBy(() -> KernelCalibration.choose(model, Kernels.Decode.ONEDNN, null))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("float32 weights only");
			assertThatThrownBy(() -> KernelCalibration.choose(model, null, Kernels.Prefill.ONEDNN))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("float32 weights only");
			// the bfloat16 form rounds beyond float tolerance: only configuration selects
			// it
			assertThat(measured.prefillMillis()).containsOnlyKeys(Kernels.Prefill.WEIGHTS, Kernels.Prefill.FLOAT32,
					Kernels.Prefill.NATIVE);
			assertThat(measured.decodeMillis().values()).allMatch((ms) -> ms > 0);
			assertThat(measured.toString()).contains("decode step ms");
			// calibration leaves the thread with the engine's threads
			assertThat(JniUtils.getNumThreads()).isEqualTo(model.kernels().threads());

			KernelCalibration.Result forced = KernelCalibration.choose(model, Kernels.Decode.SPLIT,
					Kernels.Prefill.WEIGHTS);
			assertThat(forced.kernels().decode()).isEqualTo(Kernels.Decode.SPLIT);
			assertThat(forced.kernels().prefill()).isEqualTo(Kernels.Prefill.WEIGHTS);
			assertThat(forced.decodeMillis()).isEmpty();
			assertThat(forced.prefillMillis()).isEmpty();
			assertThat(
					KernelCalibration.choose(model, Kernels.Decode.POOL, Kernels.Prefill.BFLOAT16).kernels().prefill())
				.isEqualTo(Kernels.Prefill.BFLOAT16);
		}
		finally {
			model.close();
		}
	}

	@Test
	void float32WeightsChooseBetweenMklAndOneDnnPrompts() {
		CausalLm model = load("tiny-llama", ModelOptions.CPU_FLOAT32);
		try {
			KernelCalibration.Result result = KernelCalibration.choose(model, null, null);
			// a prompt's products run through MKL, oneDNN or the native kernels;
			// widening applies to float16 only
			assertThat(result.prefillMillis()).containsOnlyKeys(Kernels.Prefill.WEIGHTS, Kernels.Prefill.ONEDNN,
					Kernels.Prefill.NATIVE);
			// every decode form is a candidate for float32 weights, oneDNN's included
			assertThat(result.decodeMillis()).containsOnlyKeys(Kernels.Decode.values());
			// the chosen plan reads the model's packed weights
			assertThat(model.withKernels(result.kernels()).kernels().packed()).isSameAs(model.kernels().packed());
		}
		finally {
			model.close();
		}
		// without packed copies, where the native forms run, oneDNN's forms are not timed
		CausalLm plain = load("tiny-llama", ModelOptions.CPU_FLOAT32.withPackWeights(false));
		try {
			assertThat(NativeKernels.unavailable()).isNull();
			KernelCalibration.Result result = KernelCalibration.choose(plain, null, null);
			assertThat(result.prefillMillis()).containsOnlyKeys(Kernels.Prefill.WEIGHTS, Kernels.Prefill.NATIVE);
			assertThat(result.decodeMillis()).doesNotContainKey(Kernels.Decode.ONEDNN).hasSize(5);
			// named, they still run, on the plain matrices
			assertThat(KernelCalibration.choose(plain, Kernels.Decode.ONEDNN, Kernels.Prefill.ONEDNN).kernels())
				.isEqualTo(new Kernels(Kernels.Decode.ONEDNN, Kernels.Prefill.ONEDNN, plain.kernels().threads()));
		}
		finally {
			plain.close();
		}
	}

	@Test
	void aLoadPacksCopiesOnlyWhereAFormThatReadsThemCanBeChosen() {
		assertThat(NativeKernels.unavailable()).isNull();
		ModelOptions full = ModelOptions.CPU_FLOAT32;
		ModelOptions half = new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu");
		// measured forms: the native ones, which read none
		assertThat(full.packsAtLoad()).isFalse();
		assertThat(half.packsAtLoad()).isFalse();
		// float32: oneDNN's forms, and the batched passes of every decode form but native
		for (Kernels.Decode decode : Kernels.Decode.values()) {
			assertThat(new ModelOptions(ModelOptions.Precision.FLOAT32, "cpu", decode, null).packsAtLoad())
				.as("%s", decode)
				.isEqualTo(decode != Kernels.Decode.NATIVE);
			// float16: the layer form's one-row products only
			assertThat(new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu", decode, null).packsAtLoad())
				.as("%s", decode)
				.isEqualTo(decode == Kernels.Decode.LAYER);
		}
		assertThat(new ModelOptions(ModelOptions.Precision.FLOAT32, "cpu", null, Kernels.Prefill.ONEDNN).packsAtLoad())
			.isTrue();
		assertThat(new ModelOptions(ModelOptions.Precision.FLOAT32, "cpu", null, Kernels.Prefill.WEIGHTS).packsAtLoad())
			.isFalse();
		// never when packing is off, or off the CPU
		assertThat(new ModelOptions(ModelOptions.Precision.FLOAT32, "cpu", Kernels.Decode.ONEDNN, null)
			.withPackWeights(false)
			.packsAtLoad()).isFalse();
		assertThat(new ModelOptions(ModelOptions.Precision.FLOAT32, "gpu", Kernels.Decode.POOL, null).packsAtLoad())
			.isFalse();
	}

	@Test
	void packedWeightsGiveThePlainProducts() {
		try (NDScope scope = new NDScope()) {
			int in = 40;
			NDArray weight = manager.randomNormal(new Shape(37, in));
			NDArray bias = manager.randomNormal(new Shape(37));
			NDArray other = manager.randomNormal(new Shape(29, in));
			// a matrix listed twice (a tied head) is packed once
			PackedWeights packed = PackedWeights.of(java.util.List.of(weight, other, weight));
			assertThat(packed.size()).isEqualTo(2);
			assertThat(packed.bytes()).isEqualTo((37L + 29L) * in * Float.BYTES);
			Kernels plain = new Kernels(Kernels.Decode.ONEDNN, Kernels.Prefill.ONEDNN, 2);
			Kernels reading = plain.withPacked(packed);
			Kernels mkl = new Kernels(Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS, 2);
			for (int rows : new int[] { 1, 3, 16, 64 }) {
				NDArray x = manager.randomNormal(new Shape(rows, in));
				float[] expected = mkl.linear(x, weight, bias).toFloatArray();
				assertThat(KernelCalibration.difference(expected, plain.linear(x, weight, bias).toFloatArray()))
					.as("%d rows, plain", rows)
					.isLessThan(1e-5);
				assertThat(KernelCalibration.difference(expected, reading.linear(x, weight, bias).toFloatArray()))
					.as("%d rows, packed", rows)
					.isLessThan(1e-5);
				assertThat(KernelCalibration.difference(mkl.linear(x, other, null).toFloatArray(),
						reading.linear(x, other, null).toFloatArray()))
					.isLessThan(1e-5);
			}
			// a matrix without a packed copy is read as it is
			NDArray unpacked = manager.randomNormal(new Shape(5, in));
			NDArray x = manager.randomNormal(new Shape(2, in));
			assertThat(KernelCalibration.difference(mkl.linear(x, unpacked, null).toFloatArray(),
					reading.linear(x, unpacked, null).toFloatArray()))
				.isLessThan(1e-5);
		}
	}

	@Test
	void selectGathersRowsAndColumnsAsIndexingDoes() {
		try (NDScope scope = new NDScope()) {
			NDArray weight = manager.randomNormal(new Shape(12, 9));
			NDArray rows = manager.create(new long[] { 0, 3, 4, 11 });
			NDArray columns = manager.create(new long[] { 1, 2, 8 });
			NDArray selectedRows = Kernels.select(weight, 0, rows);
			assertThat(selectedRows.getShape()).isEqualTo(new Shape(4, 9));
			assertThat(selectedRows.toFloatArray()).containsExactly(weight.get(rows).toFloatArray());
			NDArray selectedColumns = Kernels.select(weight, 1, columns);
			assertThat(selectedColumns.getShape()).isEqualTo(new Shape(12, 3));
			assertThat(selectedColumns.toFloatArray())
				.containsExactly(weight.get(new ai.djl.ndarray.index.NDIndex(":, {}", columns)).toFloatArray());
			assertThatThrownBy(() -> Kernels.select(weight, 2, rows)).isInstanceOf(IllegalArgumentException.class);
		}
	}

	@Test
	void packingIsConfigurationAndKeepsTheModelsOutputs() {
		CausalLm packed = load("tiny-qwen2", ModelOptions.CPU_FLOAT32);
		CausalLm plain = load("tiny-qwen2", ModelOptions.CPU_FLOAT32.withPackWeights(false));
		CausalLm half = load("tiny-qwen2", new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu"));
		try {
			// attention's two matrices and the feed-forward's two per layer, and the head
			assertThat(packed.kernels().packed().size()).isEqualTo(4 * packed.config().numberOfLayers() + 1);
			assertThat(plain.kernels().packed()).isSameAs(PackedWeights.NONE);
			// float16 copies too where oneDNN packs float16 (CPUs with AVX-512), which
			// only the layer decode form reads; freed on demand
			boolean halves = PackedWeights.packsHalf();
			assertThat(half.kernels().packed().size()).isEqualTo(halves ? 4 * half.config().numberOfLayers() + 1 : 0);
			assertThat(half.kernels().packed().bytes()).isEqualTo(halves ? packed.kernels().packed().bytes() / 2 : 0);
			for (Kernels.Decode form : Kernels.Decode.values()) {
				Kernels plan = new Kernels(form, Kernels.Prefill.WEIGHTS, 2);
				assertThat(plan.readsPacked(DataType.FLOAT16)).as("%s", form).isEqualTo(form == Kernels.Decode.LAYER);
				// a batched decode pass of any form but native goes through oneDNN
				assertThat(plan.readsPacked(DataType.FLOAT32)).as("%s", form).isEqualTo(form != Kernels.Decode.NATIVE);
			}
			for (Kernels.Prefill prefill : Kernels.Prefill.values()) {
				Kernels plan = new Kernels(Kernels.Decode.NATIVE, prefill, 2);
				assertThat(plan.readsPacked(DataType.FLOAT32)).as("native decode, %s prefill", prefill)
					.isEqualTo(prefill == Kernels.Prefill.ONEDNN);
				assertThat(plan.readsPacked(DataType.FLOAT16)).as("native decode, %s prefill", prefill).isFalse();
			}
			NDArray weight = half.layers().get(0).matrices().get(0);
			assertThat(half.withKernels(new Kernels(Kernels.Decode.LAYER, Kernels.Prefill.WEIGHTS, 2))
				.kernels()
				.halfPacked(weight) != null).isEqualTo(halves);
			assertThat(half.withKernels(new Kernels(Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS, 2))
				.kernels()
				.halfPacked(weight)).as("pool reads plain weights").isNull();
			assertThat(packed.withKernels(new Kernels(Kernels.Decode.LAYER, Kernels.Prefill.WEIGHTS, 2))
				.kernels()
				.halfPacked(packed.layers().get(0).matrices().get(0))).as("float32 weights: libtorch's product")
				.isNull();
			CausalLm freed = half.withoutPackedWeights();
			assertThat(freed.kernels().packed()).isSameAs(PackedWeights.NONE);
			Kernels oneDnn = new Kernels(Kernels.Decode.ONEDNN, Kernels.Prefill.ONEDNN, 2);
			int[] prompt = { 3, 14, 15, 92, 65 };
			float[][] a = steps(packed.withKernels(oneDnn), prompt);
			float[][] b = steps(plain.withKernels(oneDnn), prompt);
			for (int i = 0; i < a.length; i++) {
				assertThat(KernelCalibration.difference(b[i], a[i])).as("step %d", i).isLessThan(1e-5);
			}
		}
		finally {
			packed.close();
			plain.close();
			half.close();
		}
	}

	/** The last prompt position's logits, then three decode steps'. */
	private static float[][] steps(CausalLm model, int[] prompt) {
		float[][] steps = new float[4][];
		try (InferenceSession session = new InferenceSession(model, 16)) {
			steps[0] = session.prefill(prompt, prompt.length);
			session.finishPrompt();
			for (int i = 1; i < steps.length; i++) {
				steps[i] = session.decode(7 + i);
			}
		}
		return steps;
	}

	@Test
	void everyDecodeFormGivesTheSameSteps() {
		CausalLm model = load("tiny-qwen2", ModelOptions.CPU_FLOAT32);
		try {
			int[] prompt = { 3, 14, 15, 92, 65 };
			float[][] reference = null;
			for (Kernels.Decode form : Kernels.Decode.values()) {
				CausalLm planned = model.withKernels(new Kernels(form, Kernels.Prefill.WEIGHTS, 2));
				float[][] steps = new float[4][];
				try (InferenceSession session = new InferenceSession(planned, 16)) {
					session.prefill(prompt, prompt.length);
					session.finishPrompt();
					for (int i = 0; i < steps.length; i++) {
						steps[i] = session.decode(7 + i);
					}
				}
				if (reference == null) {
					reference = steps;
				}
				for (int i = 0; i < steps.length; i++) {
					assertThat(KernelCalibration.difference(reference[i], steps[i])).as("%s step %d", form, i)
						.isLessThan(1e-5);
				}
			}
		}
		finally {
			model.close();
		}
	}

	@Test
	void parsesFormsAndNamesTheChoices() {
		assertThat(ModelOptions.of("float16", "cpu", "auto", "float32").decodeKernel()).isNull();
		assertThat(ModelOptions.of("float16", "cpu", "Split", "auto").decodeKernel()).isEqualTo(Kernels.Decode.SPLIT);
		assertThatThrownBy(() -> ModelOptions.of("float32", "cpu", "fastest", "auto"))
			.isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("[pool, single, split, onednn, layer, native]");
	}

	@Test
	void theKvCacheTakesTheWeightsPrecisionUnlessTold() {
		ModelOptions half = ModelOptions.of("float16", "cpu", "auto", "auto");
		assertThat(ModelOptions.kvCache("auto")).isNull();
		assertThat(half.withKvCache(ModelOptions.kvCache("auto")).cacheDataType()).isEqualTo(DataType.FLOAT16);
		assertThat(half.withKvCache(ModelOptions.kvCache("float32")).cacheDataType()).isEqualTo(DataType.FLOAT32);
		assertThat(half.attentionDataType()).isEqualTo(DataType.FLOAT32);
		assertThat(ModelOptions.CPU_FLOAT32.cacheDataType()).isEqualTo(DataType.FLOAT32);
		assertThat(ModelOptions.CPU_FLOAT32.withKvCache(ModelOptions.Precision.FLOAT16).cacheDataType())
			.isEqualTo(DataType.FLOAT16);
		assertThat(
				half.withPackWeights(false).withKvCache(ModelOptions.Precision.FLOAT32).withPackWeights(true).kvCache())
			.isEqualTo(ModelOptions.Precision.FLOAT32);
		assertThat(ModelOptions.of("float16", "gpu", "auto", "auto").cacheDataType()).isEqualTo(DataType.FLOAT16);
		assertThatThrownBy(
				() -> ModelOptions.of("float16", "gpu", "auto", "auto").withKvCache(ModelOptions.Precision.FLOAT32))
			.isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("on a GPU the KV cache is in the model's dtype (float16), not float32");
		assertThatThrownBy(() -> ModelOptions.kvCache("int8")).isInstanceOf(IllegalArgumentException.class)
			.hasMessage("KV cache dtype 'int8' is not one of auto, float32, float16");
		assertThatThrownBy(() -> ModelOptions.kvCache("bfloat16")).isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("KV cache dtype 'bfloat16'");
	}

}

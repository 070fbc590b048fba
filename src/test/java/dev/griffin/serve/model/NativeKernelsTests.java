package dev.griffin.serve.model;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/**
 * The project's native one-row products against libtorch's in float32, for both weight
 * types, shapes that are and are not multiples of the vector width, every activation, and
 * the thread team's split of rows (fewer rows than threads included).
 */
class NativeKernelsTests {

	private static NDManager manager;

	@BeforeAll
	static void start() {
		manager = NDManager.newBaseManager();
	}

	@AfterAll
	static void stop() {
		manager.close();
	}

	@Test
	void theLibraryRunsOnTheBuildMachine() {
		// the build compiles it into the jar; a missing library or an unsupported CPU
		// must
		// show here, not as a silently absent calibration candidate
		assertThat(NativeKernels.unavailable()).isNull();
	}

	@Test
	void theHelperThreadsAreNamedForWhatTheyDo() throws IOException {
		// top -H and perf name threads by their kernel name, which a helper would
		// otherwise inherit from whichever thread loaded the library
		int helpers = NativeKernels.threads() - 1;
		List<String> names = new ArrayList<>();
		try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
			for (Path task : tasks) {
				names.add(Files.readString(task.resolve("comm")).strip());
			}
		}
		assertThat(names.stream().filter((name) -> name.startsWith("griffin-help-"))).hasSize(helpers);
	}

	@ParameterizedTest
	@CsvSource({ "1, 1", "3, 5", "7, 17", "64, 576", "130, 33", "1536, 576", "255, 1000" })
	void aProductEqualsLibtorchsInFloat32(int rows, int columns) {
		try (NDScope scope = new NDScope()) {
			NDArray weight = manager.randomNormal(new Shape(rows, columns));
			NDArray x = manager.randomNormal(new Shape(1, columns));
			for (DataType type : new DataType[] { DataType.FLOAT32, DataType.FLOAT16 }) {
				NDArray w = weight.toType(type, false);
				// the reference: the same (rounded) weights, widened, in float32
				float[] want = Linear.linear(x, w.toType(DataType.FLOAT32, false)).singletonOrThrow().toFloatArray();
				NDArray got = NativeKernels.linear(x, w);
				assertThat(got.getShape()).isEqualTo(new Shape(1, rows));
				assertThat(got.getDataType()).isEqualTo(DataType.FLOAT32);
				assertThat(KernelCalibration.difference(want, got.toFloatArray())).as("%s", type).isLessThan(1e-5);
			}
		}
	}

	@ParameterizedTest
	@CsvSource({ "1, 8", "3, 576", "16, 1536" })
	void aNormEqualsRmsNorm(int rows, int d) {
		try (NDScope scope = new NDScope()) {
			NDArray x = manager.randomNormal(0f, 3f, new Shape(rows, d), DataType.FLOAT32);
			NDArray weight = manager.randomUniform(0.5f, 1.5f, new Shape(d));
			for (DataType type : new DataType[] { DataType.FLOAT32, DataType.FLOAT16 }) {
				NDArray in = x.toType(type, false);
				RmsNorm norm = new RmsNorm(weight.toType(type, false), 1e-5);
				float[] want = norm.forward(in).toType(DataType.FLOAT32, false).toFloatArray();
				float[] before = in.toFloatArray();
				NDArray apart = NativeKernels.norm(in, norm.weight(), norm.epsilonValue(), false);
				assertThat(in.toFloatArray()).containsExactly(before);
				NDArray over = NativeKernels.norm(in, norm.weight(), norm.epsilonValue(), true);
				assertThat(over).isSameAs(in);
				for (NDArray got : new NDArray[] { apart, over }) {
					assertThat(got.getDataType()).isEqualTo(type);
					assertThat(KernelCalibration.difference(want, got.toType(DataType.FLOAT32, false).toFloatArray()))
						.as("%s", type)
						.isLessThan((type == DataType.FLOAT16) ? 2e-3 : 1e-6);
				}
			}
			assertThatThrownBy(() -> NativeKernels.norm(x, manager.ones(new Shape(d + 1)), 1e-5f, false))
				.isInstanceOf(IllegalArgumentException.class);
		}
	}

	@Test
	void aWeightClosedAndAnotherMadeIsReadAsTheNewOne() {
		// libtorch hands a new tensor the handle of one just freed; the products keep the
		// buffers of lasting tensors by handle, and must not read a closed one's memory
		NDArray x = manager.randomNormal(new Shape(1, 96));
		for (int i = 0; i < 20; i++) {
			try (NDManager weights = manager.newSubManager()) {
				NDArray weight = weights.randomNormal(new Shape(40, 96));
				float[] want = Linear.linear(x, weight).singletonOrThrow().toFloatArray();
				assertThat(KernelCalibration.difference(want, NativeKernels.linear(x, weight).toFloatArray()))
					.as("weight %d", i)
					.isLessThan(1e-5);
			}
		}
	}

	@ParameterizedTest
	@CsvSource({ "SILU, 8, 16", "RELU, 24, 37", "GELU_TANH, 40, 96", "SILU, 576, 1536", "SILU, 33, 1" })
	void aGatedBlockEqualsTheKernelsOfLibtorch(HiddenActivation activation, int d, int k) {
		try (NDScope scope = new NDScope()) {
			// weights of 0.1 spread: with 1 the largest of 576 outputs of a 576 x 1536
			// block
			// came near float16's 65504 and overflowed now and then
			NDArray gateUp = manager.randomNormal(0f, 0.1f, new Shape(2L * k, d), DataType.FLOAT32);
			NDArray down = manager.randomNormal(0f, 0.1f, new Shape(d, k), DataType.FLOAT32);
			NDArray x = manager.randomNormal(new Shape(1, d));
			Kernels pool = new Kernels(Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS, 2);
			Kernels nativeForm = new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.WEIGHTS, 2);
			for (DataType type : new DataType[] { DataType.FLOAT32, DataType.FLOAT16 }) {
				FeedForward.Weights weights = new FeedForward.Weights(gateUp.toType(type, false),
						down.toType(type, false), k, activation);
				FeedForward.Weights wide = new FeedForward.Weights(weights.gateUp().toType(DataType.FLOAT32, false),
						weights.down().toType(DataType.FLOAT32, false), k, activation);
				float[] want = pool.feedForward(x, wide).toFloatArray();
				NDArray input = x.toType(type, false);
				NDArray got = nativeForm.feedForward(input, weights);
				assertThat(got.getDataType()).isEqualTo(type);
				// float16 output: its rounding, 2^-11 of the largest value
				double allowed = (type == DataType.FLOAT16) ? 2e-3 : 1e-5;
				float[] reference = (type == DataType.FLOAT16)
						? pool.feedForward(input.toType(DataType.FLOAT32, false), wide).toFloatArray() : want;
				assertThat(KernelCalibration.difference(reference, got.toType(DataType.FLOAT32, false).toFloatArray()))
					.as("%s", type)
					.isLessThan(allowed);
			}
		}
	}

	@ParameterizedTest
	// from 16 rows on, float16 weights may be widened a block at a time (16 rows); from
	// 32 on, the panel form: 37 rows, three panels with a partial last; 33 rows of
	// 4100 columns, in three parts whose sums add up, 97 and 1537 weight rows (not
	// whole kernels of 6 or 12); 40 rows of 5 weight rows and 13 columns (fewer than
	// one kernel's, and a partial octet); 4 and 16 rows of 2500 columns, whole or in
	// passes of 1024 columns whose sums add up
	@CsvSource({ "1, 3, 5", "2, 64, 576", "4, 130, 33", "5, 1536, 576", "7, 255, 1000", "9, 17, 7", "16, 200, 300",
			"37, 1537, 576", "33, 97, 4100", "40, 5, 13", "4, 97, 2500", "16, 61, 2500" })
	void rowsEqualLibtorchsProductInFloat32(int tokens, int rows, int columns) {
		try (NDScope scope = new NDScope()) {
			NDArray weight = manager.randomNormal(new Shape(rows, columns));
			NDArray x = manager.randomNormal(new Shape(tokens, columns));
			// this CPU's passes; then those of CPUs with the three-row tiles: tiles in
			// passes of 1024 columns, float16 widened first from 16 rows, panels in
			// passes of 256 columns and parts of 2048; then whole rows, tiles never
			// widening first, panels in passes of 1000 columns
			int[][] passes = { { 0, 0, 0, 0 }, { 1024, 16, 256, 2048 },
					{ Integer.MAX_VALUE, Integer.MAX_VALUE, 1000, Integer.MAX_VALUE } };
			try {
				for (DataType type : new DataType[] { DataType.FLOAT32, DataType.FLOAT16 }) {
					NDArray w = weight.toType(type, false);
					NDArray input = x.toType(type, false);
					float[] want = Linear
						.linear(input.toType(DataType.FLOAT32, false), w.toType(DataType.FLOAT32, false))
						.singletonOrThrow()
						.toFloatArray();
					for (int[] pass : passes) {
						NativeKernels.rowPasses(pass[0], pass[1], pass[2], pass[3]);
						NDArray got = NativeKernels.rows(input, w);
						assertThat(got.getShape()).isEqualTo(new Shape(tokens, rows));
						assertThat(got.getDataType()).isEqualTo(type);
						double allowed = (type == DataType.FLOAT16) ? 2e-3 : 1e-5;
						assertThat(
								KernelCalibration.difference(want, got.toType(DataType.FLOAT32, false).toFloatArray()))
							.as("%s, passes %s", type, Arrays.toString(pass))
							.isLessThan(allowed);
					}
				}
			}
			finally {
				NativeKernels.rowPasses(0, 0, 0, 0);
			}
		}
	}

	/**
	 * The team's helpers held out of every task, as when the machine keeps them off their
	 * cores: each product completes on the calling thread alone (it used to wait for
	 * every helper to take part) and equals the same product with the team. The test runs
	 * on a thread of its own, so that a wait that never ends fails it after the timeout
	 * (the stuck call keeps the team, and the tests after it wait too).
	 */
	@Test
	@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
	void productsCompleteOnTheCallingThreadWhileTheHelpersAreHeld() {
		try (NDScope scope = new NDScope()) {
			NDArray weight = manager.randomNormal(0f, 0.1f, new Shape(1536, 576), DataType.FLOAT32);
			NDArray down = manager.randomNormal(0f, 0.1f, new Shape(576, 768), DataType.FLOAT32);
			NDArray one = manager.randomNormal(new Shape(1, 576));
			// 40 rows: packed into panels by a task of its own, then multiplied
			NDArray many = manager.randomNormal(new Shape(40, 576));
			List<float[]> team = products(weight, down, one, many);
			NativeKernels.holdHelpers(true);
			List<float[]> alone;
			try {
				alone = products(weight, down, one, many);
			}
			finally {
				NativeKernels.holdHelpers(false);
			}
			for (int i = 0; i < team.size(); i++) {
				assertThat(alone.get(i)).as("product %d", i).containsExactly(team.get(i));
			}
		}
	}

	/** A one-row product, a gated block's and several rows', in float32 and float16. */
	private static List<float[]> products(NDArray weight, NDArray down, NDArray one, NDArray many) {
		Kernels nativeForm = new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.WEIGHTS, 2);
		List<float[]> results = new ArrayList<>();
		for (DataType type : new DataType[] { DataType.FLOAT32, DataType.FLOAT16 }) {
			NDArray w = weight.toType(type, false);
			results.add(NativeKernels.linear(one, w).toFloatArray());
			FeedForward.Weights block = new FeedForward.Weights(w, down.toType(type, false), 768,
					HiddenActivation.SILU);
			results.add(nativeForm.feedForward(one.toType(type, false), block)
				.toType(DataType.FLOAT32, false)
				.toFloatArray());
			results.add(NativeKernels.rows(many.toType(type, false), w).toType(DataType.FLOAT32, false).toFloatArray());
		}
		return results;
	}

	@Test
	void theNativeFormsRouteProductsByRows() {
		try (NDScope scope = new NDScope()) {
			NDArray weight = manager.randomNormal(new Shape(48, 32));
			NDArray bias = manager.randomNormal(new Shape(48));
			Kernels nativeForm = new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.WEIGHTS, 2);
			NDArray one = manager.randomNormal(new Shape(1, 32));
			float[] want = Linear.linear(one, weight, bias).singletonOrThrow().toFloatArray();
			assertThat(KernelCalibration.difference(want, nativeForm.linear(one, weight, bias).toFloatArray()))
				.isLessThan(1e-5);
			// prompts go where the prefill form says: libtorch's product here, the native
			// one with the native prefill form
			NDArray rows = manager.randomNormal(new Shape(5, 32));
			float[] libtorch = Linear.linear(rows, weight, bias).singletonOrThrow().toFloatArray();
			assertThat(nativeForm.linear(rows, weight, bias).toFloatArray()).containsExactly(libtorch);
			Kernels nativePrefill = new Kernels(Kernels.Decode.POOL, Kernels.Prefill.NATIVE, 2);
			assertThat(KernelCalibration.difference(libtorch, nativePrefill.linear(rows, weight, bias).toFloatArray()))
				.isLessThan(1e-5);
		}
	}

	@Test
	void wrongShapesAndTypesAreRefusedBeforeAnyNativeCall() {
		try (NDScope scope = new NDScope()) {
			NDArray weight = manager.randomNormal(new Shape(8, 16));
			assertThatThrownBy(() -> NativeKernels.linear(manager.randomNormal(new Shape(1, 15)), weight))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("one row of 16");
			assertThatThrownBy(() -> NativeKernels.linear(manager.randomNormal(new Shape(2, 16)), weight))
				.isInstanceOf(IllegalArgumentException.class);
			assertThatThrownBy(() -> NativeKernels.linear(manager.randomNormal(new Shape(1, 16)),
					weight.toType(DataType.FLOAT64, false)))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("float16 or float32");
			assertThatThrownBy(() -> NativeKernels
				.linear(manager.randomNormal(new Shape(1, 16)).toType(DataType.FLOAT64, false), weight))
				.isInstanceOf(IllegalArgumentException.class);
			NDArray gateUp = manager.randomNormal(new Shape(10, 16));
			assertThatThrownBy(() -> NativeKernels.gated(manager.randomNormal(new Shape(1, 16)), gateUp,
					manager.randomNormal(new Shape(16, 4)), HiddenActivation.SILU))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("gate_up [2K, D] and down [D, K]");
			assertThat(NativeKernels.reads(weight.toType(DataType.INT32, false))).isFalse();
		}
	}

	@Test
	void aLayerWritesEachRowsCacheAtItsTokenAndRefusesWhatItCannotWrite() {
		try (NDScope scope = new NDScope()) {
			// D 16, 2 heads over 1 key-value head of 8, a block of 4 neurons; two rows,
			// the second's cache a range of a shared tensor from its token 2
			NDArray x = manager.randomNormal(new Shape(2, 16));
			NDArray norm = manager.ones(new Shape(16));
			NDArray qkv = manager.randomNormal(new Shape(32, 16));
			NDArray output = manager.randomNormal(new Shape(16, 16));
			NDArray rotation = manager.eye(8).expandDims(0).repeat(0, 2);
			NDArray gateUp = manager.randomNormal(new Shape(8, 16));
			NDArray down = manager.randomNormal(new Shape(16, 4));
			NDArray ownKeys = manager.zeros(new Shape(1, 4, 8));
			NDArray ownValues = manager.zeros(new Shape(1, 4, 8));
			NDArray keys = manager.zeros(new Shape(1, 6, 8));
			NDArray values = manager.zeros(new Shape(1, 6, 8));
			NDArray[] rowKeys = { ownKeys, keys };
			NDArray[] rowValues = { ownValues, values };
			float[] input = x.toFloatArray();
			NDArray y = NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys, rowValues,
					new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, null, null, false);
			assertThat(y.getShape()).isEqualTo(new Shape(2, 16));
			// each key went to token first + position of its tensor, nowhere else
			assertThat(writtenTokens(ownKeys, 4)).containsExactly(1);
			assertThat(writtenTokens(ownValues, 4)).containsExactly(1);
			assertThat(writtenTokens(keys, 6)).containsExactly(5);
			assertThat(writtenTokens(values, 6)).containsExactly(5);
			// the same call writing over its input: the same result, in x itself
			NDArray own = x.duplicate();
			NDArray over = NativeKernels.layer(own, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys, rowValues,
					new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, null, null, true);
			assertThat(over).isSameAs(own);
			assertThat(own.toFloatArray()).containsExactly(y.toFloatArray());
			assertThat(x.toFloatArray()).containsExactly(input);
			assertThatThrownBy(() -> NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys,
					rowValues, new int[] { 0, 3 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, null, null, false))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("cannot attend tokens");
			NDArray[] halfKeys = { ownKeys, keys.toType(DataType.FLOAT16, false) };
			assertThatThrownBy(() -> NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, halfKeys,
					rowValues, new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, null, null, false))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("all of one type");
			assertThatThrownBy(() -> NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys,
					rowValues, new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 3, 1f, gateUp, down,
					HiddenActivation.SILU, null, null, null, false))
				.isInstanceOf(IllegalArgumentException.class);
			assertThatThrownBy(() -> NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys,
					rowValues, new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, manager.ones(new Shape(2, 5)), null, null, false))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("mask");
			// two sequences' statistics of 4 neurons: a row's part must be one of them
			assertThatThrownBy(() -> NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys,
					rowValues, new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, new double[8], new int[] { 0, 2 }, false))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("neither -1 nor in [0, 2)");
			assertThatThrownBy(() -> NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys,
					rowValues, new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, new double[8], new int[] { -2, 1 }, false))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("neither -1 nor in [0, 2)");
			// a row whose part is -1 adds nothing; the other row's part is what it adds
			// with a part of its own
			double[] both = new double[8];
			NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys, rowValues,
					new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, both, new int[] { 1, 0 }, false);
			double[] second = new double[4];
			NDArray skipping = NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys,
					rowValues, new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, second, new int[] { -1, 0 }, false);
			assertThat(second).containsExactly(Arrays.copyOf(both, 4));
			assertThat(Arrays.stream(both, 4, 8).sum()).as("the first row's part").isCloseTo(1.0, within(1e-6));
			assertThat(skipping.toFloatArray()).containsExactly(y.toFloatArray());
			double[] none = new double[4];
			NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys, rowValues,
					new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, none, new int[] { -1, -1 }, false);
			assertThat(none).containsOnly(0.0);
			assertThatThrownBy(() -> NativeKernels.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, rowKeys,
					rowValues, new int[] { 0, 2 }, new int[] { 1, 3 }, new int[] { 0, 0 }, 2, 1f, gateUp, down,
					HiddenActivation.SILU, null, new double[7], new int[] { 0, 1 }, false))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("whole parts");
		}
	}

	/**
	 * A layer call posts the q/k/v weights of the call that followed it last time, for
	 * the team's waiting helpers to prefetch while the caller is between calls. Those
	 * weights may have been freed since (a closed model, a sequence's experts): the
	 * helpers only prefetch, which never faults, and the results stay the same.
	 */
	@Test
	void aLayerWhoseNextWasFreedRunsAsBefore() {
		try (NDScope scope = new NDScope()) {
			NDArray x = manager.randomNormal(new Shape(1, 16));
			NDArray norm = manager.ones(new Shape(16));
			NDArray qkv = manager.randomNormal(new Shape(32, 16));
			NDArray output = manager.randomNormal(new Shape(16, 16));
			NDArray rotation = manager.eye(8).expandDims(0);
			NDArray gateUp = manager.randomNormal(new Shape(8, 16));
			NDArray down = manager.randomNormal(new Shape(16, 4));
			NDArray[] keys = { manager.zeros(new Shape(1, 4, 8)) };
			NDArray[] values = { manager.zeros(new Shape(1, 4, 8)) };
			java.util.function.Supplier<float[]> first = () -> NativeKernels
				.layer(x, norm, norm, 1e-6f, qkv, null, output, rotation, keys, values, new int[] { 0 },
						new int[] { 1 }, new int[] { 0 }, 2, 1f, gateUp, down, HiddenActivation.SILU, null, null, null,
						false)
				.toFloatArray();
			float[] want = first.get();
			try (NDManager next = manager.newSubManager()) {
				// a wider layer after it, its q/k/v weights (64 MB) above the C library's
				// largest threshold for memory mapped on its own: unmapped when freed
				int d = 1 << 19;
				NDArray wide = next.randomNormal(new Shape(1, d));
				NDArray wideNorm = next.ones(new Shape(d));
				NativeKernels.layer(wide, wideNorm, wideNorm, 1e-6f, next.randomNormal(new Shape(32, d)), null,
						next.randomNormal(new Shape(d, 16)), rotation, new NDArray[] { next.zeros(new Shape(1, 4, 8)) },
						new NDArray[] { next.zeros(new Shape(1, 4, 8)) }, new int[] { 0 }, new int[] { 1 },
						new int[] { 0 }, 2, 1f, next.randomNormal(new Shape(8, d)), next.randomNormal(new Shape(d, 4)),
						HiddenActivation.SILU, null, null, null, false);
			}
			// the first layer's call now posts the freed weights as its next
			for (int i = 0; i < 3; i++) {
				assertThat(first.get()).as("call %d", i).containsExactly(want);
			}
		}
	}

	@Test
	void aPromptsRowsInOneCallMatchTheSameRowsInTwo() {
		// more rows than one pass of the native layer computes (256), the later ones
		// attending within a sliding window of 100 tokens: D 16, 2 heads over 1 key-value
		// head of 8, a block of 12 neurons, float16 weights
		int t = 300;
		int split = 137;
		int window = 100;
		try (NDScope scope = new NDScope()) {
			Prompt.Layer layer = Prompt.Layer.random(t);
			int[] positions = new int[t];
			int[] starts = new int[t];
			for (int i = 0; i < t; i++) {
				positions[i] = i;
				starts[i] = Attention.keyStart(window, i);
			}
			Prompt once = new Prompt(t);
			NDArray all = once.run(layer, positions, starts, 0, t);
			Prompt twice = new Prompt(t);
			NDArray first = twice.run(layer, positions, starts, 0, split);
			NDArray second = twice.run(layer, positions, starts, split, t);
			float[] want = first.concat(second).toFloatArray();
			float[] got = all.toFloatArray();
			for (int i = 0; i < got.length; i++) {
				assertThat(got[i]).as("value %d", i).isCloseTo(want[i], within(1e-5f));
			}
			assertThat(once.keys.toFloatArray()).containsExactly(twice.keys.toFloatArray(), within(1e-6f));
			assertThat(once.values.toFloatArray()).containsExactly(twice.values.toFloatArray(), within(1e-6f));
			for (int j = 0; j < 12; j++) {
				assertThat(once.statistic[j]).as("neuron %d", j).isCloseTo(twice.statistic[j], within(1e-9));
			}
			assertThat(Arrays.stream(once.statistic).min().orElseThrow()).as("every neuron's share of the rows")
				.isPositive();
		}
	}

	@Test
	void aLoneRowOverManyKeysMatchesTheSameRowInAPrompt() {
		// a lone row's attention over 700 keys is split into key ranges across the team
		// and merged; the prompt's last row attends over the same keys in one range
		int t = 700;
		try (NDScope scope = new NDScope()) {
			Prompt.Layer layer = Prompt.Layer.random(t);
			int[] positions = new int[t];
			for (int i = 0; i < t; i++) {
				positions[i] = i;
			}
			int[] starts = new int[t];
			float[] want = new Prompt(t).run(layer, positions, starts, 0, t).get((t - 1) + ":").toFloatArray();
			Prompt decoded = new Prompt(t);
			decoded.run(layer, positions, starts, 0, t - 1);
			float[] got = decoded.run(layer, positions, starts, t - 1, t).toFloatArray();
			assertThat(got).containsExactly(want, within(1e-5f));
		}
	}

	@Test
	void promptRowsInBlocksMatchTheSameRowsOneByOne() {
		// heads of 64, as real models have: on a CPU with AVX-512 a prompt's rows attend
		// in blocks of rows (attend_blocks), a lone row by itself (attend), so the two
		// forms meet here: two sequences' prompts of 300 and 70 tokens in one call per
		// pass (the blocks end where a sequence does), the later rows within a sliding
		// window of 200, against each row of each sequence in a call of its own
		int[] lengths = { 300, 70 };
		int window = 200;
		try (NDScope scope = new NDScope()) {
			WideLayer layer = WideLayer.random();
			NDArray norm = layer.norm();
			NDArray qkv = layer.qkv();
			NDArray output = layer.output();
			NDArray gateUp = layer.gateUp();
			NDArray down = layer.down();
			int total = lengths[0] + lengths[1];
			NDArray x = manager.randomNormal(new Shape(total, 128));
			NDArray[][] caches = new NDArray[2][];
			NDArray[][] alone = new NDArray[2][];
			for (int s = 0; s < 2; s++) {
				caches[s] = new NDArray[] { manager.zeros(new Shape(2, lengths[s], 64)),
						manager.zeros(new Shape(2, lengths[s], 64)) };
				alone[s] = new NDArray[] { manager.zeros(new Shape(2, lengths[s], 64)),
						manager.zeros(new Shape(2, lengths[s], 64)) };
			}
			NDArray rotation = rotateHalf(lengths[0], 64);
			NDArray[] keys = new NDArray[total];
			NDArray[] values = new NDArray[total];
			int[] positions = new int[total];
			int[] starts = new int[total];
			NDArray[] rotations = new NDArray[total];
			for (int s = 0, r = 0; s < 2; s++) {
				for (int i = 0; i < lengths[s]; i++, r++) {
					keys[r] = caches[s][0];
					values[r] = caches[s][1];
					positions[r] = i;
					starts[r] = Attention.keyStart(window, i);
					rotations[r] = rotation.get(i + ":" + (i + 1));
				}
			}
			NDArray rotated = NDArrays.concat(new NDList(rotations));
			float[] together = new float[0];
			// in passes of at most 256 rows, as the engine's prompt chunks
			for (int from = 0; from < total; from += 256) {
				int to = Math.min(total, from + 256);
				String rows = from + ":" + to;
				together = concat(together,
						NativeKernels
							.layer(x.get(rows).duplicate(), norm, norm, 1e-6f, qkv, null, output,
									rotated.get(rows).duplicate(), Arrays.copyOfRange(keys, from, to),
									Arrays.copyOfRange(values, from, to), new int[to - from],
									Arrays.copyOfRange(positions, from, to), Arrays.copyOfRange(starts, from, to), 4,
									0.125f, gateUp, down, HiddenActivation.SILU, null, null, null, false)
							.toFloatArray());
			}
			for (int r = 0; r < total; r++) {
				int s = (r < lengths[0]) ? 0 : 1;
				float[] got = NativeKernels.layer(x.get(r + ":" + (r + 1)).duplicate(), norm, norm, 1e-6f, qkv, null,
						output, rotated.get(r + ":" + (r + 1)).duplicate(), new NDArray[] { alone[s][0] },
						new NDArray[] { alone[s][1] }, new int[1], new int[] { positions[r] }, new int[] { starts[r] },
						4, 0.125f, gateUp, down, HiddenActivation.SILU, null, null, null, false)
					.toFloatArray();
				// the products of one row and of several sum in other orders too: within
				// float32 rounding of the row's largest value
				float largest = 1;
				for (float value : got) {
					largest = Math.max(largest, Math.abs(value));
				}
				for (int i = 0; i < 128; i++) {
					assertThat(together[r * 128 + i]).as("row %d value %d", r, i)
						.isCloseTo(got[i], within(1e-5f * largest));
				}
			}
			// the keys and values come from products of one row and of several
			for (int s = 0; s < 2; s++) {
				for (int c = 0; c < 2; c++) {
					float[] want = alone[s][c].toFloatArray();
					float largest = 1;
					for (float value : want) {
						largest = Math.max(largest, Math.abs(value));
					}
					assertThat(caches[s][c].toFloatArray()).containsExactly(want, within(1e-6f * largest));
				}
			}
		}
	}

	/**
	 * A float16 cache holds each key and value the float32 cache would, rounded to
	 * nearest, and attention reads it widened: a prompt of 300 rows of heads of 64 (its
	 * rows in blocks on a CPU with AVX-512), then a generated row over all of it, give
	 * what they give over a float32 cache, within what the rounded keys and values move
	 * (float16's 1e-3 of the largest output, scores of a few units).
	 */
	@Test
	void float16CachesHoldTheRoundedKeysAndValues() {
		int t = 300;
		try (NDScope scope = new NDScope()) {
			WideLayer layer = WideLayer.random();
			NDArray x = manager.randomNormal(new Shape(t + 1, 128));
			NDArray rotation = rotateHalf(t + 1, 64);
			float[][] outputs = new float[2][];
			NDArray[][] caches = new NDArray[2][];
			DataType[] types = { DataType.FLOAT32, DataType.FLOAT16 };
			for (int c = 0; c < 2; c++) {
				NDArray keys = manager.zeros(new Shape(2, t + 1, 64), types[c]);
				NDArray values = manager.zeros(new Shape(2, t + 1, 64), types[c]);
				NDArray[] keyRows = new NDArray[t];
				NDArray[] valueRows = new NDArray[t];
				Arrays.fill(keyRows, keys);
				Arrays.fill(valueRows, values);
				int[] positions = new int[t];
				for (int i = 0; i < t; i++) {
					positions[i] = i;
				}
				String rows = "0:" + t;
				float[] prompt = NativeKernels
					.layer(x.get(rows).duplicate(), layer.norm(), layer.norm(), 1e-6f, layer.qkv(), null,
							layer.output(), rotation.get(rows).duplicate(), keyRows, valueRows, new int[t], positions,
							new int[t], 4, 0.125f, layer.gateUp(), layer.down(), HiddenActivation.SILU, null, null,
							null, false)
					.toFloatArray();
				String last = t + ":" + (t + 1);
				float[] generated = NativeKernels
					.layer(x.get(last).duplicate(), layer.norm(), layer.norm(), 1e-6f, layer.qkv(), null,
							layer.output(), rotation.get(last).duplicate(), new NDArray[] { keys },
							new NDArray[] { values }, new int[1], new int[] { t }, new int[1], 4, 0.125f,
							layer.gateUp(), layer.down(), HiddenActivation.SILU, null, null, null, false)
					.toFloatArray();
				outputs[c] = concat(prompt, generated);
				caches[c] = new NDArray[] { keys, values };
			}
			for (int kv = 0; kv < 2; kv++) {
				assertThat(caches[1][kv].getDataType()).isEqualTo(DataType.FLOAT16);
				assertThat(caches[1][kv].toType(DataType.FLOAT32, false).toFloatArray()).as("cache %d", kv)
					.containsExactly(caches[0][kv].toType(DataType.FLOAT16, false)
						.toType(DataType.FLOAT32, false)
						.toFloatArray());
			}
			float largest = 1;
			for (float value : outputs[0]) {
				largest = Math.max(largest, Math.abs(value));
			}
			assertThat(outputs[1]).containsExactly(outputs[0], within(1e-3f * largest));
			assertThat(outputs[1]).as("the rounding shows").isNotEqualTo(outputs[0]);
		}
	}

	/**
	 * Decode rows attend with a group's query heads taken together (AVX-512, three at a
	 * time) or each head on its own, and get the same layer output bit for bit: a lone
	 * row over 701 keys (split into key ranges) and three rows of a batched step over
	 * caches of unequal lengths, for groups that fill a set, leave part of one, or hold
	 * one head, heads of 64, 128 and 256, float32 and float16 caches.
	 */
	@ParameterizedTest
	@CsvSource({ "9, 3, 64, FLOAT16", "9, 3, 64, FLOAT32", "7, 1, 64, FLOAT16", "4, 4, 64, FLOAT32",
			"12, 2, 128, FLOAT16", "8, 2, 128, FLOAT32", "4, 1, 256, FLOAT16" })
	void aGroupsHeadsTakenTogetherGiveWhatEachHeadGivesOnItsOwn(int heads, int kvHeads, int dh, String cacheType) {
		DataType type = DataType.valueOf(cacheType);
		int[][] steps = { { 700 }, { 300, 517, 45 } };
		try (NDScope scope = new NDScope()) {
			NDArray norm = manager.randomUniform(0.5f, 1.5f, new Shape(128));
			NDArray qkv = Prompt.Layer.half((heads + 2 * kvHeads) * dh, 128).mul(0.2f);
			NDArray output = Prompt.Layer.half(128, heads * dh);
			NDArray gateUp = Prompt.Layer.half(24, 128);
			NDArray down = Prompt.Layer.half(128, 12);
			NDArray rotations = rotateHalf(701, dh);
			for (int[] positions : steps) {
				int rows = positions.length;
				NDArray x = manager.randomNormal(new Shape(rows, 128));
				NDArray[] keys = new NDArray[rows];
				NDArray[] values = new NDArray[rows];
				NDList rotation = new NDList();
				for (int r = 0; r < rows; r++) {
					keys[r] = manager.randomNormal(new Shape(kvHeads, positions[r] + 1, dh)).toType(type, false);
					values[r] = manager.randomNormal(new Shape(kvHeads, positions[r] + 1, dh)).toType(type, false);
					rotation.add(rotations.get(positions[r]));
				}
				NDArray rotated = NDArrays.stack(rotation);
				float[][] outputs = new float[2][];
				boolean[] together = { false, true };
				try {
					for (int form = 0; form < 2; form++) {
						NativeKernels.groupHeads(together[form]);
						NDArray[] keyCopies = new NDArray[rows];
						NDArray[] valueCopies = new NDArray[rows];
						for (int r = 0; r < rows; r++) {
							keyCopies[r] = keys[r].duplicate();
							valueCopies[r] = values[r].duplicate();
						}
						outputs[form] = NativeKernels
							.layer(x.duplicate(), norm, norm, 1e-6f, qkv, null, output, rotated.duplicate(), keyCopies,
									valueCopies, new int[rows], positions, new int[rows], heads, 0.125f, gateUp, down,
									HiddenActivation.SILU, null, null, null, false)
							.toFloatArray();
					}
				}
				finally {
					NativeKernels.groupHeads(true);
				}
				assertThat(outputs[1]).as("%d rows", rows).containsExactly(outputs[0]);
			}
		}
	}

	/**
	 * A layer with heads of 64, as real models have: D 128, 4 heads over 2 key-value
	 * heads, a block of 12 neurons, float16 weights.
	 */
	private record WideLayer(NDArray norm, NDArray qkv, NDArray output, NDArray gateUp, NDArray down) {

		static WideLayer random() {
			// q/k/v weights a third of the others' size: scores of a few units, as a
			// trained model's, where a softmax of scores near 100 would make float32 sums
			// of another order differ by e^(their difference)
			return new WideLayer(manager.randomUniform(0.5f, 1.5f, new Shape(128)),
					Prompt.Layer.half(8 * 64, 128).mul(0.33f), Prompt.Layer.half(128, 4 * 64),
					Prompt.Layer.half(24, 128), Prompt.Layer.half(128, 12));
		}

	}

	private static float[] concat(float[] a, float[] b) {
		float[] both = Arrays.copyOf(a, a.length + b.length);
		System.arraycopy(b, 0, both, a.length, b.length);
		return both;
	}

	/** One sequence's cache and prompt statistic, which prompt calls fill. */
	private static final class Prompt {

		final NDArray keys;

		final NDArray values;

		final double[] statistic = new double[12];

		Prompt(int tokens) {
			this.keys = manager.zeros(new Shape(1, tokens, 8));
			this.values = manager.zeros(new Shape(1, tokens, 8));
		}

		/**
		 * A layer of D 16, 2 heads over 1 key-value head of 8 and a block of 12 neurons
		 * (float16 weights), and t tokens' inputs and rotations.
		 */
		record Layer(NDArray x, NDArray norm, NDArray qkv, NDArray output, NDArray rotation, NDArray gateUp,
				NDArray down) {

			static Layer random(int t) {
				return new Layer(manager.randomNormal(new Shape(t, 16)),
						manager.randomUniform(0.5f, 1.5f, new Shape(16)), half(32, 16), half(16, 16), rotateHalf(t, 8),
						half(24, 16), half(16, 12));
			}

			static NDArray half(int rows, int columns) {
				return manager.randomNormal(0f, 0.3f, new Shape(rows, columns), DataType.FLOAT32)
					.toType(DataType.FLOAT16, false);
			}

		}

		/** Rows [from, to) of the prompt in one call. */
		NDArray run(Layer layer, int[] positions, int[] starts, int from, int to) {
			int n = to - from;
			NDArray[] keyRows = new NDArray[n];
			NDArray[] valueRows = new NDArray[n];
			Arrays.fill(keyRows, this.keys);
			Arrays.fill(valueRows, this.values);
			String rows = from + ":" + to;
			return NativeKernels.layer(layer.x().get(rows).duplicate(), layer.norm(), layer.norm(), 1e-6f, layer.qkv(),
					null, layer.output(), layer.rotation().get(rows).duplicate(), keyRows, valueRows, new int[n],
					Arrays.copyOfRange(positions, from, to), Arrays.copyOfRange(starts, from, to), 2, 0.35f,
					layer.gateUp(), layer.down(), HiddenActivation.SILU, null, this.statistic, null, false);
		}

	}

	/**
	 * Rotary matrices of positions [0, t) in the rotate-half form, {@code I cos + R sin},
	 * with Hugging Face's frequencies for base 10000: [t, dh, dh].
	 */
	private static NDArray rotateHalf(int t, int dh) {
		int half = dh / 2;
		float[] m = new float[t * dh * dh];
		for (int p = 0; p < t; p++) {
			for (int j = 0; j < dh; j++) {
				double angle = p / Math.pow(10000, (double) (2 * (j % half)) / dh);
				int other = (j < half) ? j + half : j - half;
				m[(p * dh + j) * dh + j] = (float) Math.cos(angle);
				m[(p * dh + other) * dh + j] = (float) ((j < half) ? -Math.sin(angle) : Math.sin(angle));
			}
		}
		return manager.create(m, new Shape(t, dh, dh));
	}

	/** The tokens of a [1, tokens, 8] cache that hold anything but zeros. */
	private static List<Integer> writtenTokens(NDArray cache, int tokens) {
		float[] values = cache.toFloatArray();
		List<Integer> written = new ArrayList<>();
		for (int t = 0; t < tokens; t++) {
			float sum = 0;
			for (int i = 0; i < 8; i++) {
				sum += Math.abs(values[t * 8 + i]);
			}
			if (sum > 0) {
				written.add(t);
			}
		}
		return written;
	}

}

package dev.griffin.serve.model;

import java.lang.ref.WeakReference;
import java.nio.Buffer;
import java.util.LinkedHashMap;
import java.util.Map;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Pointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The project's own products ({@code src/main/native/griffin_kernels.c}) for the
 * {@link Kernels.Decode#NATIVE} and {@link Kernels.Prefill#NATIVE} forms: float16 or
 * float32 weights read where libtorch keeps them, widened in registers and multiplied
 * with FMA, accumulated in float32, on a team of threads that this library starts once
 * per process (helpers that spin between products and sleep after 2 ms idle, for the life
 * of the process). Calls from several engine threads take turns. libtorch's one-row
 * float16 product multiplies about as many weights per second as its float32 one on the
 * CPUs this project is measured on, so a float16 decode step read half the bytes and took
 * nearly as long.
 * <p>
 * The Maven build compiles the C file into the jar ({@code linux-x86-64/}), and JNA loads
 * it from there. The products need a CPU with AVX2, FMA and F16C (AVX-512F is used where
 * present); {@link #unavailable()} says why they cannot run, and calibration then leaves
 * the form out. Every call checks what it passes: contiguous CPU tensors of the stated
 * shapes and types.
 */
public final class NativeKernels {

	private static final Logger logger = LoggerFactory.getLogger(NativeKernels.class);

	private static final int FLOAT32 = 0;

	private static final int FLOAT16 = 1;

	private NativeKernels() {
	}

	/** The library, bound and started on first use. */
	private static final class Library {

		/** Why the products cannot run here, or null when they can. */
		static final String UNAVAILABLE;

		static {
			String why = null;
			int level = 0;
			try {
				Native.register(NativeKernels.class, NativeLibrary.getInstance("griffin_kernels"));
				level = griffin_init(Kernels.engineThreads());
				if (level == 0) {
					why = "this CPU lacks AVX2, FMA or F16C";
				}
				else if (level < 0) {
					why = "a helper thread could not start";
				}
				else {
					logger.info("native products: {} on {} threads", (level == 3) ? "AVX-512F" : "AVX2 with F16C",
							griffin_threads());
				}
			}
			catch (LinkageError | RuntimeException ex) {
				// JNA or the library missing or broken: calibration leaves the native
				// forms out
				why = "the native library did not load (" + ex + ")";
			}
			UNAVAILABLE = why;
		}

	}

	/** Why the native products cannot run on this machine, or null when they can. */
	public static String unavailable() {
		return Library.UNAVAILABLE;
	}

	/** Threads in the products' team: the caller and its helpers. For tests. */
	static int threads() {
		require();
		return griffin_threads();
	}

	/**
	 * Holds the team's helper threads out of every task from now on (true), as when the
	 * machine keeps them off their cores, or lets them join again (false). For tests: a
	 * product must then complete on the calling thread alone.
	 */
	static void holdHelpers(boolean hold) {
		require();
		griffin_hold_helpers(hold ? 1 : 0);
	}

	/**
	 * Whether a unit of attention takes its group's query heads together (true; the
	 * default on CPUs with AVX-512, the only ones with that form) or each head on its own
	 * (false). Both give the same contexts bit for bit. For tests.
	 * @param together the heads together where the CPU has the form
	 * @return whether the heads are now taken together
	 */
	static boolean groupHeads(boolean together) {
		require();
		return griffin_group_heads(together ? 1 : 0) != 0;
	}

	/**
	 * Sets how the products of several activation rows pass over their weights: in tiles,
	 * the columns per pass and the fewest float16 rows whose weights are widened to
	 * float32 first; in panels (a prompt's rows), the columns per pass and per part at
	 * most. 0 for any restores what suits this CPU. For tests: every setting computes the
	 * same product.
	 */
	static void rowPasses(int columns, int widenFrom, int panelPass, int panelPart) {
		require();
		griffin_row_passes(columns, widenFrom, panelPass, panelPart);
	}

	/**
	 * Whether a weight can be read by these products: float16 or float32, 2-D, on the
	 * CPU.
	 */
	static boolean reads(NDArray weight) {
		DataType type = weight.getDataType();
		return (type == DataType.FLOAT16 || type == DataType.FLOAT32) && weight.getShape().dimension() == 2
				&& weight.getDevice().getDeviceType().equals("cpu") && !weight.isSparse();
	}

	/**
	 * x W^T for one row x [1, in] (float32 or float16) and W [out, in]: [1, out] in x's
	 * type.
	 */
	static NDArray linear(NDArray x, NDArray weight) {
		require();
		long out = weight.getShape().get(0);
		long in = weight.getShape().get(1);
		check(x, in);
		int weightType = type(weight);
		NDArray y = x.getManager().create(new Shape(1, out), x.getDataType());
		succeeded(griffin_gemv(lasting(weight), weightType, memory(x), memory(y), type(x), Math.toIntExact(out),
				Math.toIntExact(in)));
		return y;
	}

	/**
	 * x W^T for several rows x [T, in] (float32 or float16, a prompt chunk) and W [out,
	 * in]: [T, out] in x's type, each weight read once for every four rows.
	 */
	static NDArray rows(NDArray x, NDArray weight) {
		require();
		long out = weight.getShape().get(0);
		long in = weight.getShape().get(1);
		Shape shape = x.getShape();
		if (shape.dimension() != 2 || shape.get(1) != in) {
			throw new IllegalArgumentException("native products take rows of %d values, not %s".formatted(in, shape));
		}
		int weightType = type(weight);
		NDArray y = x.getManager().create(new Shape(shape.get(0), out), x.getDataType());
		succeeded(griffin_rows(lasting(weight), weightType, memory(x), memory(y), type(x),
				Math.toIntExact(shape.get(0)), Math.toIntExact(out), Math.toIntExact(in)));
		return y;
	}

	/**
	 * A gated block for one row: {@code act(x G^T) * (x U^T)} times D^T, for gate_up [2K,
	 * in] (G's rows first) and down [in, K] of one type: x [1, in] -> [1, in] in x's type
	 * (float32 or float16), the activations in float32.
	 */
	static NDArray gated(NDArray x, NDArray gateUp, NDArray down, HiddenActivation activation) {
		require();
		long d = gateUp.getShape().get(1);
		long k = gateUp.getShape().get(0) / 2;
		if (gateUp.getShape().get(0) != 2 * k || down.getShape().get(0) != d || down.getShape().get(1) != k
				|| gateUp.getDataType() != down.getDataType()) {
			throw new IllegalArgumentException(
					"a gated block needs gate_up [2K, D] and down [D, K] of one type, not %s and %s"
						.formatted(gateUp.getShape(), down.getShape()));
		}
		check(x, d);
		int weightType = type(gateUp);
		NDArray y = x.getManager().create(new Shape(1, d), x.getDataType());
		succeeded(griffin_gated(lasting(gateUp), lasting(down), weightType, memory(x), memory(y), type(x),
				Math.toIntExact(d), Math.toIntExact(k), activation.code()));
		return y;
	}

	/**
	 * B rows through a whole pre-norm decoder layer in one call (the arithmetic of
	 * {@link BatchLayer#stepOne}, row by row, each weight read once for all the rows):
	 * one generated token of each of B sequences, or B prompt tokens of one sequence (one
	 * cache, consecutive positions: every row's key and value are written before any row
	 * attends, so each row sees the rows before it). x [B, D] (float32 or float16) -> [B,
	 * D] in x's type. The norm weights [D] and the q/k/v bias ([(H + 2 KVH) Dh], or null)
	 * are in x's type; the attention's weights (queryKeyValue [(H + 2 KVH) Dh, D], output
	 * [D, H Dh]) share one type, the block's (gateUp [2K, D], down [D, K]) another or the
	 * same. rotation [B, Dh, Dh] (float32; [Dh, Dh] for one row) rotates each row's
	 * queries and keys; it has {@link RotaryEmbedding}'s rotate-half form, of which only
	 * the diagonal and the entries [(j + Dh/2) mod Dh, j] are read. Row b's cache is
	 * keys[b] and values[b], tensors [KVH, tokens, Dh] created whole (contiguous: the
	 * call writes the new key and value into their memory), all of one type, float32 or
	 * float16 (the key and value written rounded to nearest, widened where they are read:
	 * the attention's arithmetic is float32 either way), the sequence's token 0 at token
	 * {@code firsts[b]} of them; its token is written at {@code positions[b]} and attends
	 * over [{@code starts[b]}, {@code positions[b]}], its scores times {@code scale}.
	 * keep [B, K] (float32, 1 or 0; null when every row is dense) masks each row's
	 * activations to the neurons it reads. statistic (null: none) accumulates GRIFFIN's
	 * prompt statistic of the rows' activations, {@code ExpertSelector.sumOfSquares},
	 * over the K neurons: [K], or with owners (the prompt rows of several sequences, or
	 * the rows of a batched decode step of which some record) [S K], row b's activations
	 * going to its part {@code owners[b]}, or nowhere where that is -1. With
	 * {@code overwrite} the result is written over x, which is returned (the call reads
	 * each row of x before it writes that row): a pass whose residual stream is its own
	 * creates no tensor per layer, which through DJL costs tens of microseconds each (see
	 * docs/results.md).
	 */
	static NDArray layer(NDArray x, NDArray attentionNorm, NDArray ffnNorm, float epsilon, NDArray queryKeyValue,
			NDArray bias, NDArray output, NDArray rotation, NDArray[] keys, NDArray[] values, int[] firsts,
			int[] positions, int[] starts, int heads, float scale, NDArray gateUp, NDArray down,
			HiddenActivation activation, NDArray keep, double[] statistic, int[] owners, boolean overwrite) {
		require();
		int rows = Math.toIntExact(x.getShape().get(0));
		if (rows < 1 || keys.length != rows || values.length != rows || firsts.length != rows
				|| positions.length != rows || starts.length != rows) {
			throw new IllegalArgumentException("a native layer needs a cache, a position and a window per row");
		}
		Shape first = keys[0].getShape();
		if (first.dimension() != 3 || heads <= 0 || heads % first.get(0) != 0 || first.get(2) <= 0
				|| first.get(2) % 2 != 0) {
			throw new IllegalArgumentException(
					"a native layer cannot attend %d heads with caches %s".formatted(heads, first));
		}
		int kvHeads = Math.toIntExact(first.get(0));
		int dh = Math.toIntExact(first.get(2));
		DataType cached = keys[0].getDataType();
		if (cached != DataType.FLOAT32 && cached != DataType.FLOAT16) {
			throw new IllegalArgumentException("a native layer's caches are float32 or float16, not " + cached);
		}
		long[] keyAddresses = new long[rows];
		long[] valueAddresses = new long[rows];
		long[] strides = new long[rows];
		for (int b = 0; b < rows; b++) {
			if (b > 0 && keys[b] == keys[b - 1] && values[b] == values[b - 1] && firsts[b] == firsts[b - 1]) {
				// a prompt's rows share one cache: checked and located once
				keyAddresses[b] = keyAddresses[b - 1];
				valueAddresses[b] = valueAddresses[b - 1];
				strides[b] = strides[b - 1];
			}
			else {
				Shape cache = keys[b].getShape();
				if (cache.dimension() != 3 || cache.get(0) != kvHeads || cache.get(2) != dh
						|| !cache.equals(values[b].getShape()) || keys[b].getDataType() != cached
						|| values[b].getDataType() != cached) {
					throw new IllegalArgumentException(
							"a native layer needs caches [%d, tokens, %d] all of one type (%s), not %s and %s of %s and %s"
								.formatted(kvHeads, dh, cached, cache, values[b].getShape(), keys[b].getDataType(),
										values[b].getDataType()));
				}
				long offset = (long) Math.max(firsts[b], 0) * dh * cached.getNumOfBytes();
				keyAddresses[b] = address(keys[b]) + offset;
				valueAddresses[b] = address(values[b]) + offset;
				strides[b] = cache.get(1) * dh;
			}
			long tokens = strides[b] / dh;
			if (starts[b] < 0 || starts[b] > positions[b] || firsts[b] < 0
					|| firsts[b] + (long) positions[b] >= tokens) {
				throw new IllegalArgumentException("a native layer cannot attend tokens %d..%d of %d from %d"
					.formatted(starts[b], positions[b], tokens, firsts[b]));
			}
		}
		long d = queryKeyValue.getShape().get(1);
		long projected = (long) (heads + 2 * kvHeads) * dh;
		Shape shape = x.getShape();
		if (shape.dimension() != 2 || shape.get(1) != d) {
			throw new IllegalArgumentException("a native layer takes rows of %d values, not %s".formatted(d, shape));
		}
		DataType io = x.getDataType();
		requireShape(queryKeyValue, projected, d, "q/k/v");
		requireShape(output, d, (long) heads * dh, "output");
		requireVector(attentionNorm, d, io, "attention norm");
		requireVector(ffnNorm, d, io, "feed-forward norm");
		if (bias != null) {
			requireVector(bias, projected, io, "q/k/v bias");
		}
		Shape turn = rotation.getShape();
		if (rotation.getDataType() != DataType.FLOAT32 || turn.size() != (long) rows * dh * dh
				|| turn.get(turn.dimension() - 1) != dh) {
			throw new IllegalArgumentException(
					"a native layer needs a float32 rotation [%d, %d, %d], not %s".formatted(rows, dh, dh, turn));
		}
		long k = gateUp.getShape().get(0) / 2;
		requireShape(gateUp, 2 * k, d, "gate/up");
		requireShape(down, d, k, "down");
		if (queryKeyValue.getDataType() != output.getDataType() || gateUp.getDataType() != down.getDataType()) {
			throw new IllegalArgumentException(
					"a native layer's attention weights share one type, and so do its block's");
		}
		if (keep != null && (keep.getDataType() != DataType.FLOAT32 || !keep.getShape().equals(new Shape(rows, k)))) {
			throw new IllegalArgumentException("a native layer's mask must be float32 [%d, %d], not %s of %s"
				.formatted(rows, k, keep.getShape(), keep.getDataType()));
		}
		long parts = 1;
		if (owners != null) {
			if (statistic == null || owners.length != rows || statistic.length % k != 0) {
				throw new IllegalArgumentException(
						"a native layer's owners need a statistic of whole parts of %d neurons and one owner per row"
							.formatted(k));
			}
			parts = statistic.length / k;
			for (int owner : owners) {
				if (owner < -1 || owner >= parts) {
					throw new IllegalArgumentException(
							"a row's statistic part %d is neither -1 nor in [0, %d)".formatted(owner, parts));
				}
			}
		}
		if (statistic != null && statistic.length != parts * k) {
			throw new IllegalArgumentException(
					"a native layer's statistic needs %d neurons, not %d".formatted(k, statistic.length));
		}
		NDArray y = overwrite ? x : x.getManager().create(new Shape(rows, d), io);
		// a pass's layers take the same hidden state (written over) and rotation one
		// after another
		long in = address(x);
		succeeded(griffin_layer(overwrite ? in : address(memory(y)), in, type(x), rows, Math.toIntExact(d),
				address(attentionNorm), address(ffnNorm), epsilon, address(queryKeyValue),
				(bias == null) ? 0L : address(bias), address(output), type(queryKeyValue), address(rotation),
				keyAddresses, valueAddresses, strides, typeCode(cached), positions, starts, heads, kvHeads, dh, scale,
				address(gateUp), address(down), type(gateUp), Math.toIntExact(k), activation.code(),
				(keep == null) ? 0L : address(memory(keep)), statistic, owners));
		return y;
	}

	/**
	 * RMS norm of each row of x [T, D] (float32 or float16) with the weight [D] of x's
	 * type, the arithmetic of a native layer's norms ({@link RmsNorm}'s, rounded to x's
	 * type where it rounds): [T, D] in x's type, written over x (and x returned) with
	 * {@code overwrite}.
	 */
	static NDArray norm(NDArray x, NDArray weight, float epsilon, boolean overwrite) {
		require();
		Shape shape = x.getShape();
		if (shape.dimension() != 2) {
			throw new IllegalArgumentException("a native norm takes rows, not " + shape);
		}
		long d = shape.get(1);
		DataType io = x.getDataType();
		requireVector(weight, d, io, "norm");
		NDArray y = overwrite ? x : x.getManager().create(shape, io);
		Buffer in = memory(x);
		succeeded(griffin_norm(overwrite ? in : memory(y), in, type(x), Math.toIntExact(shape.get(0)),
				Math.toIntExact(d), lasting(weight), epsilon));
		return y;
	}

	/**
	 * GRIFFIN's experts of a gated block, copied by the native team: the gate rows E and
	 * the up rows F + E of gateUp [2F, D] as [2k, D], and the columns E of down [D, F] as
	 * [D, k], new arrays of the weights' type in {@code manager}.
	 * @param neurons E, each in [0, F), k >= 1 of them
	 */
	static NDArray[] gather(NDArray gateUp, NDArray down, int[] neurons, NDManager manager) {
		require();
		Shape shape = gateUp.getShape();
		long d = shape.get(1);
		long f = shape.get(0) / 2;
		if (shape.dimension() != 2 || shape.get(0) != 2 * f || !down.getShape().equals(new Shape(d, f))
				|| gateUp.getDataType() != down.getDataType()) {
			throw new IllegalArgumentException("gathering experts needs gate_up [2F, D] and down [D, F] of one type, "
					+ "not %s and %s".formatted(shape, down.getShape()));
		}
		if (neurons.length == 0) {
			throw new IllegalArgumentException("gathering no expert");
		}
		for (int neuron : neurons) {
			if (neuron < 0 || neuron >= f) {
				throw new IllegalArgumentException("neuron %d is outside [0, %d)".formatted(neuron, f));
			}
		}
		int k = neurons.length;
		NDArray rows = manager.create(new Shape(2L * k, d), gateUp.getDataType());
		NDArray columns = manager.create(new Shape(d, k), down.getDataType());
		succeeded(griffin_gather(lasting(gateUp), lasting(down), type(gateUp), neurons, k, Math.toIntExact(f),
				Math.toIntExact(d), memory(rows), memory(columns)));
		return new NDArray[] { rows, columns };
	}

	/**
	 * The address of {@link #lasting}'s memory of a tensor, which must stay open while it
	 * is used. A layer's call passes addresses, not buffers: JNA hands a long over as it
	 * is, where it asks the JVM for each buffer's address and position (about a dozen
	 * calls back into the JVM a layer).
	 */
	private static long address(NDArray array) {
		if (!(array instanceof PtNDArray tensor) || array.isReleased()) {
			return address(memory(array)); // which refuses what it cannot read
		}
		return located(tensor).address();
	}

	/** The address of a direct buffer's memory. */
	private static long address(Buffer buffer) {
		return Pointer.nativeValue(Native.getDirectBufferPointer(buffer));
	}

	/**
	 * {@link #memory} of a tensor that outlives many calls (a weight, GRIFFIN's gathered
	 * experts, a KV cache, or a pass's hidden state and rotation, which each of its
	 * layers takes), kept by its libtorch handle: a layer's call passes about a dozen of
	 * them, and asking libtorch for each costs a few microseconds (a few percent of a
	 * SmolLM2 decode step). An entry counts only for the very array it was made for,
	 * while that array is open; the least recently used go beyond {@link #LASTING}.
	 */
	private static Buffer lasting(NDArray array) {
		if (!(array instanceof PtNDArray tensor) || array.isReleased()) {
			return memory(array); // which refuses what it cannot read
		}
		return located(tensor).buffer();
	}

	/** {@link #lasting}'s entry for an open tensor, made if it has none. */
	private static Located located(PtNDArray tensor) {
		Long handle = tensor.getHandle();
		synchronized (LOCATED) {
			Located known = LOCATED.get(handle);
			if (known != null && known.array().get() == tensor) {
				return known;
			}
		}
		Buffer buffer = memory(tensor);
		Located made = new Located(new WeakReference<>(tensor), buffer, address(buffer));
		synchronized (LOCATED) {
			LOCATED.put(handle, made);
		}
		return made;
	}

	/** A tensor, the buffer over its memory and that memory's address. */
	private record Located(WeakReference<NDArray> array, Buffer buffer, long address) {
	}

	/** The most tensors {@link #lasting} keeps buffers for. */
	private static final int LASTING = 4096;

	/** {@link #lasting}'s buffers by libtorch handle, least recently used first. */
	private static final Map<Long, Located> LOCATED = new LinkedHashMap<>(256, 0.75f, true) {

		@Override
		protected boolean removeEldestEntry(Map.Entry<Long, Located> eldest) {
			return size() > LASTING;
		}

	};

	private static void requireShape(NDArray weight, long rows, long columns, String what) {
		Shape shape = weight.getShape();
		if (shape.dimension() != 2 || shape.get(0) != rows || shape.get(1) != columns) {
			throw new IllegalArgumentException(
					"a native layer's %s weight must be [%d, %d], not %s".formatted(what, rows, columns, shape));
		}
	}

	private static void requireVector(NDArray vector, long size, DataType type, String what) {
		if (vector.getShape().dimension() != 1 || vector.getShape().get(0) != size || vector.getDataType() != type) {
			throw new IllegalArgumentException("a native layer's %s must be [%d] of %s, not %s of %s".formatted(what,
					size, type, vector.getShape(), vector.getDataType()));
		}
	}

	private static void succeeded(int status) {
		if (status != 0) {
			throw new OutOfMemoryError("native products: no memory for their scratch buffers");
		}
	}

	private static void require() {
		if (Library.UNAVAILABLE != null) {
			throw new IllegalStateException("native products cannot run: " + Library.UNAVAILABLE);
		}
	}

	private static void check(NDArray x, long columns) {
		Shape shape = x.getShape();
		if (shape.dimension() != 2 || shape.get(0) != 1 || shape.get(1) != columns) {
			throw new IllegalArgumentException(
					"native products take one row of %d values, not %s".formatted(columns, shape));
		}
	}

	private static int type(NDArray array) {
		return typeCode(array.getDataType());
	}

	private static int typeCode(DataType type) {
		return switch (type) {
			case FLOAT32 -> FLOAT32;
			case FLOAT16 -> FLOAT16;
			default ->
				throw new IllegalArgumentException("native products take float16 or float32 tensors, not " + type);
		};
	}

	/**
	 * A direct buffer over the tensor's own memory (libtorch's storage, no copy); the
	 * tensor must stay open while the buffer is used. Only dense, contiguous CPU tensors
	 * have one.
	 */
	private static Buffer memory(NDArray array) {
		if (!array.getDevice().getDeviceType().equals("cpu") || array.isSparse()) {
			throw new IllegalArgumentException("native products read dense CPU tensors only");
		}
		Buffer buffer = array.toByteBuffer(true);
		if (!buffer.isDirect()) {
			throw new IllegalStateException("libtorch did not expose the tensor's memory");
		}
		return buffer;
	}

	private static native int griffin_init(int threads);

	private static native int griffin_threads();

	private static native void griffin_hold_helpers(int hold);

	private static native int griffin_group_heads(int together);

	private static native void griffin_row_passes(int columns, int widen, int pass, int part);

	private static native int griffin_gemv(Buffer weight, int type, Buffer x, Buffer y, int ioType, int rows,
			int columns);

	private static native int griffin_rows(Buffer weight, int type, Buffer x, Buffer y, int ioType, int tokens,
			int rows, int columns);

	private static native int griffin_gated(Buffer gateUp, Buffer down, int type, Buffer x, Buffer y, int ioType, int d,
			int k, int activation);

	private static native int griffin_norm(Buffer y, Buffer x, int ioType, int rows, int d, Buffer weight,
			float epsilon);

	private static native int griffin_gather(Buffer gateUp, Buffer down, int type, int[] neurons, int k, int f, int d,
			Buffer gateUpOut, Buffer downOut);

	private static native int griffin_layer(long y, long x, int ioType, int rows, int d, long attentionNorm,
			long ffnNorm, float epsilon, long queryKeyValue, long bias, long output, int attentionType, long rotation,
			long[] keys, long[] values, long[] headStrides, int kvType, int[] positions, int[] starts, int heads,
			int kvHeads, int dh, float scale, long gateUp, long down, int ffType, int k, int activation, long keep,
			double[] statistic, int[] owners);

}

package dev.griffin.serve.model;

import java.nio.Buffer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
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
			catch (UnsatisfiedLinkError | RuntimeException ex) {
				why = "the native library did not load (" + ex.getMessage() + ")";
			}
			UNAVAILABLE = why;
		}

	}

	/** Why the native products cannot run on this machine, or null when they can. */
	public static String unavailable() {
		return Library.UNAVAILABLE;
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
		succeeded(griffin_gemv(memory(weight), weightType, memory(x), memory(y), type(x), Math.toIntExact(out),
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
		succeeded(griffin_rows(memory(weight), weightType, memory(x), memory(y), type(x), Math.toIntExact(shape.get(0)),
				Math.toIntExact(out), Math.toIntExact(in)));
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
		succeeded(griffin_gated(memory(gateUp), memory(down), weightType, memory(x), memory(y), type(x),
				Math.toIntExact(d), Math.toIntExact(k), activation.code()));
		return y;
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
		return switch (array.getDataType()) {
			case FLOAT32 -> FLOAT32;
			case FLOAT16 -> FLOAT16;
			default -> throw new IllegalArgumentException(
					"native products take float16 or float32 tensors, not " + array.getDataType());
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

	private static native int griffin_gemv(Buffer weight, int type, Buffer x, Buffer y, int ioType, int rows,
			int columns);

	private static native int griffin_rows(Buffer weight, int type, Buffer x, Buffer y, int ioType, int tokens,
			int rows, int columns);

	private static native int griffin_gated(Buffer gateUp, Buffer down, int type, Buffer x, Buffer y, int ioType, int d,
			int k, int activation);

}

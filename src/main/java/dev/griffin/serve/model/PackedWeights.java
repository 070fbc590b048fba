package dev.griffin.serve.model;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import ai.djl.engine.Engine;
import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * oneDNN's blocked copies of a model's weight matrices, for the products that go through
 * oneDNN: with float32 weights {@link Kernels.Decode#ONEDNN},
 * {@link Kernels.Prefill#ONEDNN} and every batched decode pass; with float16 weights the
 * one-row products of {@link Kernels.Decode#LAYER}, where oneDNN's float16 product on a
 * packed copy ran about 1.3-1.5x faster than libtorch's on a CPU without AVX512-FP16 for
 * the shapes of a 1.5B-parameter model (docs/results.md). A plain float16 matrix must
 * never reach oneDNN's product: there it was 6 to 60 times slower than libtorch's. oneDNN
 * multiplies a plain [out, in] matrix by first reordering it into its blocked layout, on
 * every call; a packed copy is reordered once, at load. With 2 threads on a CPU with
 * AVX-512, a 1536 x 576 product of 16 rows took 0.6 ms packed against 2.5 ms plain and
 * 2.9 ms with MKL, and a prompt chunk of 64 rows 2.0 against 3.5 and 13 ms; one row runs
 * no slower packed than plain.
 * <p>
 * The plain matrices stay: the other forms read them, and GRIFFIN gathers its experts
 * from them. Packing therefore costs as much memory again as the packed matrices, which
 * is why configuration can turn it off, and why a load makes the copies only where a form
 * that reads them can be chosen ({@link ModelOptions#packsAtLoad()}). Built once and
 * read-only afterwards; the copies belong to the model's manager.
 */
public final class PackedWeights {

	/** No packed copies: every product reads the plain matrix. */
	public static final PackedWeights NONE = new PackedWeights(Collections.emptyMap(), 0);

	/**
	 * The product size the blocked layout is chosen for. One layout serves every size:
	 * measured from 1 to 512 rows, a layout for 16 rows was within noise of the layout
	 * for each size.
	 */
	static final int ROWS = 16;

	private static final Logger logger = LoggerFactory.getLogger(PackedWeights.class);

	private final Map<NDArray, NDArray> packed;

	private final long bytes;

	private PackedWeights(Map<NDArray, NDArray> packed, long bytes) {
		this.packed = packed;
		this.bytes = bytes;
	}

	/** Whether oneDNN packs float16 matrices on this CPU, probed once per process. */
	private static final class Half {

		static final boolean PACKS = probe();

		private static boolean probe() {
			try (NDManager manager = Engine.getEngine("PyTorch").newBaseManager()) {
				ScriptedProducts.oneDnn().pack(manager.zeros(new Shape(ROWS, ROWS), DataType.FLOAT16), ROWS);
				return true;
			}
			catch (EngineException ex) {
				// measured: an AVX2 CPU without AVX-512 refuses, saying the float16 path
				// needs AVX512-FP16 or AVX-NE-CONVERT; CPUs with AVX-512 pack
				logger.info("oneDNN packs no float16 weights on this CPU; float16 products read plain weights ({})",
						ex.getMessage()
							.lines()
							.filter((line) -> line.startsWith("RuntimeError"))
							.findFirst()
							.orElse("its reorder failed"));
				return false;
			}
		}

	}

	/** Whether oneDNN packs float16 matrices on this CPU. */
	public static boolean packsHalf() {
		return Half.PACKS;
	}

	/**
	 * Packs each matrix (float32 or float16 on the CPU) into the manager that owns it; a
	 * matrix listed twice (a tied output head) is packed once. Float16 matrices stay
	 * unpacked where oneDNN cannot pack them (CPUs without AVX-512): then every product
	 * with them reads the plain matrix.
	 */
	static PackedWeights of(List<NDArray> matrices) {
		Map<NDArray, NDArray> packed = new IdentityHashMap<>();
		long bytes = 0;
		for (NDArray matrix : matrices) {
			if (matrix.getDataType() == DataType.FLOAT16 && !Half.PACKS) {
				continue;
			}
			if (!packed.containsKey(matrix)) {
				packed.put(matrix, ScriptedProducts.oneDnn().pack(matrix, ROWS));
				bytes += matrix.getShape().size() * matrix.getDataType().getNumOfBytes();
			}
		}
		return new PackedWeights(Collections.unmodifiableMap(packed), bytes);
	}

	/** The packed copy of {@code weight}, or {@code weight} itself when it has none. */
	NDArray of(NDArray weight) {
		NDArray copy = this.packed.get(weight);
		return (copy != null) ? copy : weight;
	}

	/** Whether {@code weight} has a packed copy. */
	boolean has(NDArray weight) {
		return this.packed.containsKey(weight);
	}

	/** Frees the packed copies; nothing may read them afterwards. */
	void close() {
		this.packed.values().forEach(NDArray::close);
	}

	/** Bytes the packed copies hold. */
	public long bytes() {
		return this.bytes;
	}

	/** Matrices packed. */
	public int size() {
		return this.packed.size();
	}

}

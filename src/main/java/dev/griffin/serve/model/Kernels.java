package dev.griffin.serve.model;

import java.util.Arrays;
import java.util.Locale;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.jni.JniUtils;

/**
 * How the model's products run on this machine: the one place that computes a projection,
 * a feed-forward block and the output head. Which form is fastest depends on the CPU (and
 * its libtorch kernels), so {@link KernelCalibration} times the candidates at load and
 * configuration can force one.
 *
 * @param decode the form of a one-token pass
 * @param prefill the form of a pass of several tokens
 * @param threads libtorch intra-op threads for the forms that use libtorch's own pool
 * @param packed the model's oneDNN-packed weight copies, which the oneDNN forms read
 * instead of the plain matrices ({@link PackedWeights#NONE}: none)
 */
public record Kernels(Decode decode, Prefill prefill, int threads, PackedWeights packed) {

	/** Forms of a decode step (one token). */
	public enum Decode {

		/** Every product on libtorch's intra-op pool of {@code threads}. */
		POOL,
		/**
		 * One intra-op thread: no OpenMP team to wake for the small products of a step.
		 */
		SINGLE,
		/**
		 * The feed-forward block and the output head in two halves, each on its own
		 * thread with one intra-op thread; the rest as {@link #SINGLE}.
		 */
		SPLIT,
		/**
		 * Every product through oneDNN's float32 inner product ({@link ScriptedProducts})
		 * on libtorch's intra-op pool of {@code threads}: on CPUs where MKL takes its
		 * generic path, oneDNN reads one-row and few-row products at up to 2.5x MKL's
		 * speed. Float32 weights only.
		 */
		ONEDNN,
		/**
		 * Each layer of a generated token in one TorchScript call ({@link BatchLayer}):
		 * norms, products (libtorch's own, on its intra-op pool of {@code threads}),
		 * rotation, attention, the gated block and residuals, instead of about thirty DJL
		 * operations; everything else as {@link #POOL}. Float32 or float16 weights, on
		 * the CPU (float16 with the casts of the one-token path: norms and attention in
		 * float32, the residual stream and products in float16). Float16 weights with
		 * packed copies ({@link PackedWeights}) multiply through oneDNN, the layers' and
		 * the output head's alike.
		 */
		LAYER,
		/**
		 * Every one-row product through the project's own kernels
		 * ({@link NativeKernels}): float16 or float32 weights widened in registers,
		 * float32 accumulation, on a team of {@code threads} native threads; the gated
		 * feed-forward block is one call. Where the {@link #LAYER} form would run a layer
		 * in one call, the whole layer is one native call: norms, products, rotation,
		 * attention over the cache and residuals ({@link BatchLayer#stepOneNative}), 1.5
		 * libtorch operations per SmolLM2 layer instead of 8.5. The rest of the step runs
		 * on one intra-op thread, so that libtorch's OpenMP team does not spin beside the
		 * native one. CPUs with AVX2, FMA and F16C only
		 * ({@link NativeKernels#unavailable}).
		 */
		NATIVE;

		/** Whether a pass of one token runs on one intra-op thread. */
		boolean singleThreaded() {
			return this == SINGLE || this == SPLIT || this == NATIVE;
		}

		public static Decode parse(String name) {
			return Kernels.parse(Decode.class, name);
		}

	}

	/** Forms of a prompt pass (several tokens). */
	public enum Prefill {

		/** Products in the weights' precision. */
		WEIGHTS,
		/**
		 * Half-precision weights widened to float32 for each product: libtorch's CPU
		 * float16 matrix-matrix product can be several times slower than float32's.
		 */
		FLOAT32,
		/**
		 * Weights and activations rounded to bfloat16 for each product, results in the
		 * activations' type ({@link ScriptedProducts}): on CPUs with AVX512-BF16
		 * libtorch's bfloat16 product runs several times faster than float32's. It rounds
		 * beyond the weights' precision (about 4e-3 of a product's largest value), so
		 * calibration never picks it: configuration does.
		 */
		BFLOAT16,
		/**
		 * Products through oneDNN's float32 inner product, as {@link Decode#ONEDNN}
		 * computes one-token products. Float32 weights only.
		 */
		ONEDNN,
		/**
		 * Products through the project's own kernels ({@link NativeKernels#rows}):
		 * float16 or float32 weights widened in registers, each read once for every four
		 * rows, float32 accumulation. CPUs with AVX2, FMA and F16C only.
		 */
		NATIVE;

		/**
		 * Whether calibration may choose the form: it computes within float tolerance.
		 */
		public boolean exact() {
			return this != BFLOAT16;
		}

		public static Prefill parse(String name) {
			return Kernels.parse(Prefill.class, name);
		}

	}

	/**
	 * The most weight bytes the bfloat16 prefill form converts at once: 8Mi bfloat16
	 * elements, the block tools/torchscript/make_bfloat16.py writes into the module.
	 */
	public static final long BFLOAT16_BLOCK_BYTES = 16L << 20;

	public Kernels {
		if (decode == null || prefill == null || threads < 1) {
			throw new IllegalArgumentException("kernels need a decode form, a prefill form and threads >= 1");
		}
		packed = (packed == null) ? PackedWeights.NONE : packed;
	}

	/** Forms that read the plain weight matrices. */
	public Kernels(Decode decode, Prefill prefill, int threads) {
		this(decode, prefill, threads, PackedWeights.NONE);
	}

	/** The same forms reading {@code copies} where they go through oneDNN. */
	Kernels withPacked(PackedWeights copies) {
		return (copies == this.packed) ? this : new Kernels(this.decode, this.prefill, this.threads, copies);
	}

	/**
	 * The engine's intra-op threads as configured, read before any pass changes the
	 * calling thread's count.
	 */
	private static final class Engine {

		static final int THREADS = JniUtils.getNumThreads();

	}

	/** The engine's intra-op threads as configured (the native products' team size). */
	static int engineThreads() {
		return Engine.THREADS;
	}

	/** libtorch's own pool for everything: the engine without a plan. */
	public static Kernels pool() {
		return new Kernels(Decode.POOL, Prefill.WEIGHTS, Engine.THREADS);
	}

	/**
	 * Sets the calling thread's libtorch intra-op threads for a pass of {@code tokens}
	 * tokens (libtorch keeps the count per thread): one where the pass's products run on
	 * another team (a helper thread, or the native kernels' threads), so that no OpenMP
	 * thread spins on the core they need.
	 */
	void enter(int tokens) {
		boolean single = (tokens == 1) ? this.decode.singleThreaded() : this.prefill == Prefill.NATIVE;
		useThreads(single ? 1 : this.threads);
	}

	/**
	 * The plan for a batched decode pass (one token of each of several sequences): its
	 * several rows are one-token products, so they never take a prompt form that rounds
	 * or widens the weights. With the {@link Decode#NATIVE} form the rows go through the
	 * native several-row product, which reads each weight once for every four rows, and a
	 * plain layer whose rows read the dense block (masked to GRIFFIN's experts where the
	 * cost model picks that form) is one native call for all the rows
	 * ({@link BatchLayer#stepNative}); the pass then runs on one intra-op thread, as the
	 * one-row form does (with oneDNN's product for the output head, libtorch's OpenMP
	 * threads spun beside the native team: a third of a 4-row SmolLM2 step went to
	 * waiting). Otherwise, where oneDNN's float32 product applies (float32 weights on the
	 * CPU) the rows go through it whatever the one-row form: with 2 threads a SmolLM2
	 * step of 4 rows took 137 ms with it against 300 ms with MKL's, and 493 against 553
	 * ms at 16 rows ({@code bench --batch}).
	 * @param oneDnn whether oneDNN's float32 product applies to the weights
	 */
	Kernels batchDecode(boolean oneDnn) {
		Prefill rows = (this.decode == Decode.NATIVE) ? Prefill.NATIVE
				: (oneDnn || this.decode == Decode.ONEDNN) ? Prefill.ONEDNN : Prefill.WEIGHTS;
		return (rows == this.prefill) ? this : new Kernels(this.decode, rows, this.threads, this.packed);
	}

	/** Sets the calling thread's libtorch intra-op threads. */
	static void useThreads(int threads) {
		if (JniUtils.getNumThreads() != threads) {
			JniUtils.setNumThreads(threads);
		}
	}

	/**
	 * Whether this plan reads packed copies of weights of {@code type}: float32 copies
	 * serve the oneDNN forms, and the batched decode passes of every decode form but
	 * {@link Decode#NATIVE} ({@link #batchDecode}), so a plan of the native decode form
	 * with a prefill form other than {@link Prefill#ONEDNN} reads none; float16 copies
	 * serve only the {@link Decode#LAYER} form's one-row products ({@link #halfPacked}).
	 */
	public boolean readsPacked(DataType type) {
		if (type == DataType.FLOAT16) {
			return this.decode == Decode.LAYER;
		}
		return type == DataType.FLOAT32 && (this.decode != Decode.NATIVE || this.prefill == Prefill.ONEDNN);
	}

	/**
	 * The packed copy one row's product with a float16 weight reads in the
	 * {@link Decode#LAYER} form, or null: the weight is not float16 or has no copy
	 * (GRIFFIN's gathered experts), and libtorch's own product reads it.
	 */
	NDArray halfPacked(NDArray weight) {
		boolean reads = this.decode == Decode.LAYER && weight.getDataType() == DataType.FLOAT16
				&& this.packed.has(weight);
		return reads ? this.packed.of(weight) : null;
	}

	/**
	 * The packed float16 copies one row's product with a feed-forward block reads in the
	 * {@link Decode#LAYER} form, or null when it reads the plain weights: for the layer's
	 * dense block the model's copies; for a sequence's own weights (GRIFFIN's experts)
	 * copies of their own, which {@link BlockWeights#packed} makes the first time, when
	 * the model packs its dense block.
	 */
	public Packed halfPacked(BlockWeights weights) {
		if (readsDense(weights)) {
			NDArray gateUp = halfPacked(weights.gateUp());
			NDArray down = halfPacked(weights.down());
			return (gateUp != null && down != null) ? new Packed(gateUp, down) : null;
		}
		return weights.packed(this);
	}

	/**
	 * Whether this plan's one-row products read packed copies of the layer's float16
	 * weights, {@code dense} being one of them: then a sequence's own weights in that
	 * layer are packed too, for the layer to read every weight through one kind of
	 * product.
	 */
	public boolean packsHalf(NDArray dense) {
		return halfPacked(dense) != null;
	}

	/**
	 * oneDNN's blocked copy of a float16 or float32 matrix, which only the packed forms
	 * read: a new array in {@code weight}'s manager.
	 */
	public static NDArray pack(NDArray weight) {
		return ScriptedProducts.oneDnn().pack(weight, PackedWeights.ROWS);
	}

	/** x W^T + b for x [T, in] and W [out, in] (b may be null): [T, out] in x's type. */
	public NDArray linear(NDArray x, NDArray weight, NDArray bias) {
		boolean rows = x.getShape().get(0) > 1;
		if ((rows ? this.prefill == Prefill.NATIVE : this.decode == Decode.NATIVE) && NativeKernels.reads(weight)) {
			NDArray product = rows ? NativeKernels.rows(x, weight) : NativeKernels.linear(x, weight);
			return (bias == null) ? product : product.add(bias);
		}
		if (rows ? this.prefill == Prefill.ONEDNN : this.decode == Decode.ONEDNN) {
			return ScriptedProducts.oneDnn().linear(x, this.packed.of(weight), bias);
		}
		NDArray half = rows ? null : halfPacked(weight);
		if (half != null) {
			return ScriptedProducts.oneDnn().linear(x, half, bias);
		}
		if (this.prefill == Prefill.BFLOAT16 && rows) {
			return ScriptedProducts.bfloat16().linear(x, weight, bias);
		}
		if (widens(x, weight)) {
			NDArray wide = Linear
				.linear(x.toType(DataType.FLOAT32, false), weight.toType(DataType.FLOAT32, false),
						(bias == null) ? null : bias.toType(DataType.FLOAT32, false))
				.singletonOrThrow();
			return wide.toType(weight.getDataType(), false);
		}
		return Linear.linear(x, weight, bias).singletonOrThrow();
	}

	private boolean widens(NDArray x, NDArray weight) {
		return this.prefill == Prefill.FLOAT32 && weight.getDataType() == DataType.FLOAT16 && x.getShape().get(0) > 1;
	}

	/**
	 * A block's activations Z: {@code act(x W_gate^T) * (x W_up^T)} for stacked gate/up
	 * weights [2K, D], {@code act(x W_up^T + b_up)} for a non-gated block's [K, D]: x [T,
	 * D] -> [T, K].
	 */
	public NDArray activations(NDArray x, BlockWeights weights) {
		return activated(linear(x, weights.gateUp(), weights.upBias()), weights);
	}

	/**
	 * act(gate) * up for the stacked products [T, 2K] of a gated block, act(up) for a
	 * non-gated block's [T, K]: [T, K].
	 */
	private static NDArray activated(NDArray products, BlockWeights weights) {
		if (!weights.gated()) {
			return weights.activation().apply(products);
		}
		NDList halves = products.split(2, 1); // 2 x [T, K]
		return weights.activation().apply(halves.get(0)).mul(halves.get(1)); // [T, K]
	}

	/** Z W_down^T (+ b_down) for the block's W_down [D, K]: Z [T, K] -> [T, D]. */
	public NDArray output(NDArray z, BlockWeights weights) {
		return linear(z, weights.down(), weights.downBias());
	}

	/** A feed-forward block: x [T, D] -> [T, D]. */
	public NDArray feedForward(NDArray x, BlockWeights weights) {
		if (x.getShape().get(0) == 1 && this.decode == Decode.NATIVE && weights.gated() && weights.gateUp() != null
				&& weights.upBias() == null && weights.downBias() == null && NativeKernels.reads(weights.gateUp())
				&& NativeKernels.reads(weights.down())) {
			return NativeKernels.gated(x, weights.gateUp(), weights.down(), weights.activation());
		}
		if (x.getShape().get(0) == 1 && this.decode == Decode.LAYER) {
			Packed packed = halfPacked(weights);
			if (packed != null) {
				ScriptedProducts oneDnn = ScriptedProducts.oneDnn();
				return oneDnn.linear(activated(oneDnn.linear(x, packed.gateUp(), weights.upBias()), weights),
						packed.down(), weights.downBias());
			}
		}
		if (x.getShape().get(0) == 1 && this.decode == Decode.SPLIT && weights.halves() != null) {
			Halves h = weights.halves();
			HiddenActivation activation = weights.activation();
			NDArray[] parts = HelperThread.both(() -> half(x, h.gateA(), h.upA(), h.downA(), activation),
					() -> half(x, h.gateB(), h.upB(), h.downB(), activation));
			return parts[0].add(parts[1]);
		}
		return output(activations(x, weights), weights);
	}

	/**
	 * A feed-forward block over B rows that read different weights (one generated token
	 * of each of B sequences): x [B, D] -> [B, D]. A row whose entry in {@code rows} is
	 * null reads {@code dense}; any other row reads only its own neurons (GRIFFIN's
	 * experts; none: a zero row, or the down bias alone). Two forms give that output, and
	 * the one that reads fewer weight bytes runs ({@link #masksDense}): the dense block
	 * once for every row, each row's activations masked to its neurons before the down
	 * projection; or the dense rows' one product plus each other row's product with its
	 * gathered experts, as its sequence's one-token step computes it.
	 */
	public NDArray feedForwardRows(NDArray x, FeedForward.Weights dense, BlockWeights[] rows) {
		int b = (int) x.getShape().get(0);
		int denseRows = 0;
		for (BlockWeights row : rows) {
			denseRows += (row == null) ? 1 : 0;
		}
		if (denseRows == b) {
			return feedForward(x, dense);
		}
		int neurons = dense.intermediateSize();
		if (masksDense(rows, neurons)) {
			NDArray z = activations(x, dense); // [B, F]
			return output(z.mul(keep(rows, neurons, x.getManager()).toType(z.getDataType(), false)), dense);
		}
		NDArray[] outputs = new NDArray[b];
		long[] denseIndex = new long[denseRows];
		int next = 0;
		for (int i = 0; i < b; i++) {
			BlockWeights own = rows[i];
			if (own == null) {
				denseIndex[next++] = i;
				continue;
			}
			NDArray row = x.get(new NDIndex().addSliceDim(i, i + 1)); // [1, D]
			outputs[i] = (own.gateUp() == null) ? withoutNeurons(row, own) : feedForward(row, own);
		}
		if (denseRows > 0) {
			NDArray index = x.getManager().create(denseIndex);
			NDArray denseOutput = feedForward(x.get(index), dense); // [denseRows, D]
			for (int j = 0; j < denseRows; j++) {
				outputs[(int) denseIndex[j]] = denseOutput.get(new NDIndex().addSliceDim(j, j + 1));
			}
		}
		return NDArrays.concat(new NDList(outputs), 0);
	}

	/**
	 * A block's output with no neuron (GRIFFIN's k = 0): zero, plus the down projection's
	 * bias where the block has one. x [T, D] -> [T, D].
	 */
	public static NDArray withoutNeurons(NDArray x, BlockWeights weights) {
		NDArray zeros = x.zerosLike();
		return (weights.downBias() == null) ? zeros : zeros.add(weights.downBias());
	}

	/** Whether a row reads the dense block: a null entry, or one without neurons. */
	static boolean readsDense(BlockWeights row) {
		return row == null || row.neurons() == null;
	}

	/** Whether every row reads the dense block. */
	static boolean allDense(BlockWeights[] rows) {
		for (BlockWeights row : rows) {
			if (!readsDense(row)) {
				return false;
			}
		}
		return true;
	}

	/**
	 * The masked form's mask: [B, F] float32, 1 where row i reads neuron j (every neuron
	 * for a dense row, its experts for a GRIFFIN one).
	 */
	static NDArray keep(BlockWeights[] rows, int neurons, NDManager manager) {
		int b = rows.length;
		float[] mask = new float[b * neurons];
		for (int i = 0; i < b; i++) {
			if (readsDense(rows[i])) {
				Arrays.fill(mask, i * neurons, (i + 1) * neurons, 1f);
			}
			else {
				for (int neuron : rows[i].neurons()) {
					mask[i * neurons + neuron] = 1f;
				}
			}
		}
		return manager.create(mask, new Shape(b, neurons));
	}

	/**
	 * The cost model of {@link #feedForwardRows}, in weight bytes read: true when the
	 * dense block read once (F neurons) costs no more than the per-row form, which reads
	 * the dense block if any row is dense plus each other row's k_i gathered neurons.
	 * Decode is bound by reading the weights, so with B rows of density d this picks the
	 * masked form once B x d >= 1.
	 */
	static boolean masksDense(BlockWeights[] rows, int neurons) {
		long perRow = 0;
		boolean anyDense = false;
		for (BlockWeights row : rows) {
			if (readsDense(row)) {
				anyDense = true;
			}
			else {
				perRow += row.neurons().length;
			}
		}
		return anyDense || perRow >= neurons;
	}

	private static NDArray half(NDArray x, NDArray gate, NDArray up, NDArray down, HiddenActivation activation) {
		NDArray g = Linear.linear(x, gate).singletonOrThrow();
		NDArray z = activation.apply(g).mul(Linear.linear(x, up).singletonOrThrow());
		return Linear.linear(z, down).singletonOrThrow();
	}

	/**
	 * The output head: x [T, D] and W [V, D] -> [T, V]; the head's halves may be null.
	 */
	NDArray head(NDArray x, NDArray weight, NDArray[] halves) {
		if (x.getShape().get(0) == 1 && this.decode == Decode.SPLIT && halves != null) {
			NDArray[] parts = HelperThread.both(() -> Linear.linear(x, halves[0]).singletonOrThrow(),
					() -> Linear.linear(x, halves[1]).singletonOrThrow());
			return parts[0].concat(parts[1], 1);
		}
		return linear(x, weight, null);
	}

	/**
	 * The slices of {@code weight} at {@code index} (int64) along {@code axis} (0: rows,
	 * 1: columns), as one contiguous array in the weight's manager: GRIFFIN's expert
	 * gathering, through libtorch's index_select ({@link ScriptedProducts#indexSelect}),
	 * several times faster than DJL's advanced indexing.
	 */
	public static NDArray select(NDArray weight, int axis, NDArray index) {
		if (axis < 0 || axis >= weight.getShape().dimension()) {
			throw new IllegalArgumentException(
					"axis %d of a %d-dimensional array".formatted(axis, weight.getShape().dimension()));
		}
		return ScriptedProducts.indexSelect(weight, axis, index);
	}

	/**
	 * GRIFFIN's experts of a gated block: the gate rows E then the up rows F + E of
	 * gateUp [2F, D] as [2k, D], and the columns E of down [D, F] as [D, k], new
	 * contiguous arrays in {@code manager}. The native team copies them where it reads
	 * the weights (libtorch's index_select, which does it otherwise, runs on one thread
	 * in the native forms); either way an exact copy.
	 * @param neurons E, k >= 1 of them, each in [0, F)
	 */
	public static NDArray[] gatherExperts(NDArray gateUp, NDArray down, int[] neurons, NDManager manager) {
		if (NativeKernels.unavailable() == null && NativeKernels.reads(gateUp) && NativeKernels.reads(down)
				&& gateUp.getDataType() == down.getDataType()) {
			return NativeKernels.gather(gateUp, down, neurons, manager);
		}
		int f = Math.toIntExact(gateUp.getShape().get(0) / 2);
		int k = neurons.length;
		long[] rows = new long[2 * k];
		for (int i = 0; i < k; i++) {
			rows[i] = neurons[i];
			rows[k + i] = (long) neurons[i] + f;
		}
		try (NDManager scratch = manager.newSubManager()) {
			NDArray rowIndex = scratch.create(rows);
			NDArray gathered = select(gateUp, 0, rowIndex);
			NDArray columns = select(down, 1, rowIndex.get(new NDIndex().addSliceDim(0, k)));
			gathered.attach(manager);
			columns.attach(manager);
			return new NDArray[] { gathered, columns };
		}
	}

	/** Two row halves of W (views), or null for a single row. */
	static NDArray[] rowHalves(NDArray weight) {
		long rows = weight.getShape().get(0);
		if (rows < 2) {
			return null;
		}
		NDArray[] halves = { weight.get(new NDIndex().addSliceDim(0, rows / 2)),
				weight.get(new NDIndex().addSliceDim(rows / 2, rows)) };
		NDScope.unregister(halves);
		return halves;
	}

	/**
	 * The weights of a feed-forward block (see {@link FeedForward.Weights}), and their
	 * two halves of neurons for the split decode form.
	 */
	public interface BlockWeights {

		/**
		 * [2K, D], gate rows then up rows; for a non-gated block ({@link #gated} false)
		 * [K, D], the up rows alone.
		 */
		NDArray gateUp();

		/** [D, K]. */
		NDArray down();

		/**
		 * Views of the two halves of neurons, or null when there are fewer than two or
		 * the block is not gated.
		 */
		Halves halves();

		/** The activation on the gate (on the up rows of a non-gated block). */
		HiddenActivation activation();

		/** Whether {@link #gateUp} stacks gate and up rows. */
		default boolean gated() {
			return true;
		}

		/** The bias of the {@link #gateUp} rows, [K], or null. */
		default NDArray upBias() {
			return null;
		}

		/** The down projection's bias, [D], or null. */
		default NDArray downBias() {
			return null;
		}

		/**
		 * Which of the layer's neurons these weights hold, ascending (GRIFFIN's experts),
		 * or null for all of them.
		 */
		default int[] neurons() {
			return null;
		}

		/**
		 * Packed copies of these weights, made on the first call when {@code kernels}
		 * packs the layer's float16 weights ({@link Kernels#packsHalf}) and kept; null
		 * otherwise, and for weights whose copies the model holds (the dense block) or
		 * that have no neuron.
		 */
		default Packed packed(Kernels kernels) {
			return null;
		}

	}

	/**
	 * oneDNN-packed copies of a block's two matrices ({@link PackedWeights}), which only
	 * oneDNN's product reads.
	 *
	 * @param gateUp [2K, D] (a non-gated block's [K, D]) packed
	 * @param down [D, K] packed
	 */
	public record Packed(NDArray gateUp, NDArray down) {
	}

	/**
	 * Views of a gated block's two halves of neurons: rows of W_gate and W_up, columns of
	 * W_down (a strided view, which libtorch's products read in place). The block's
	 * output is the sum of the halves' outputs. The views belong to the viewed arrays'
	 * manager and are freed with it.
	 */
	public record Halves(NDArray gateA, NDArray upA, NDArray downA, NDArray gateB, NDArray upB, NDArray downB) {

		/**
		 * @param gateUp [2K, D]
		 * @param down [D, K]
		 * @param k neurons
		 * @return null for fewer than two neurons
		 */
		public static Halves of(NDArray gateUp, NDArray down, int k) {
			if (k < 2) {
				return null;
			}
			int h = k / 2;
			NDArray[] views = { gateUp.get(new NDIndex().addSliceDim(0, h)),
					gateUp.get(new NDIndex().addSliceDim(k, k + h)),
					down.get(new NDIndex().addAllDim().addSliceDim(0, h)), gateUp.get(new NDIndex().addSliceDim(h, k)),
					gateUp.get(new NDIndex().addSliceDim(k + h, 2L * k)),
					down.get(new NDIndex().addAllDim().addSliceDim(h, k)) };
			NDScope.unregister(views);
			return new Halves(views[0], views[1], views[2], views[3], views[4], views[5]);
		}

	}

	private static <E extends Enum<E>> E parse(Class<E> type, String name) {
		try {
			return Enum.valueOf(type, name.trim().toUpperCase(Locale.ROOT));
		}
		catch (IllegalArgumentException ex) {
			throw new IllegalArgumentException("'%s' is not one of %s".formatted(name,
					java.util.Arrays.toString(type.getEnumConstants()).toLowerCase(Locale.ROOT)));
		}
	}

	@Override
	public String toString() {
		String forms = "decode %s, prefill %s, %d threads".formatted(this.decode.name().toLowerCase(Locale.ROOT),
				this.prefill.name().toLowerCase(Locale.ROOT), this.threads);
		return (this.packed.size() == 0) ? forms
				: forms + ", %d packed matrices (%d MiB)".formatted(this.packed.size(), this.packed.bytes() >> 20);
	}

}

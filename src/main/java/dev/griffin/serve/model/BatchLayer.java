package dev.griffin.serve.model;

import java.util.Arrays;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDScope;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;

/**
 * A whole decoder layer of a batched decode step in one call: norms, products, rotation,
 * the gathered attention of rows whose caches live in one {@link KvArena}, the gated
 * feed-forward block (dense, or masked per row to GRIFFIN's experts) and both residuals,
 * inside libtorch. From Java the same layer is about thirty DJL operations, each a JNI
 * call with its own bookkeeping. It applies where a batch's products go through oneDNN
 * (float32 weights on the CPU, read from their packed copies); the work runs in a
 * weightless TorchScript module ({@code tools/torchscript/make_batch_layer.py}). The same
 * module runs one sequence's generated token a layer at a time for the
 * {@link Kernels.Decode#LAYER} form.
 */
final class BatchLayer {

	private static final class Module {

		static final PtSymbolBlock INSTANCE = ScriptedProducts.module("batch-layer.pt");

		/**
		 * What the module reads as "none" (DJL passes no None): an empty array that lives
		 * as long as the process, outside any pass's scope.
		 */
		static final PtNDArray NONE = none();

		private static PtNDArray none() {
			NDArray empty = Engine.getEngine("PyTorch").newBaseManager().create(new float[0]);
			NDScope.unregister(empty);
			return (PtNDArray) empty;
		}

	}

	private BatchLayer() {
	}

	/**
	 * Whether a layer of this batch runs here: its products go through oneDNN, its rows'
	 * caches are in one arena, and its feed-forward rows take the dense or masked form
	 * ({@link Kernels#masksDense}, true whenever a row is dense).
	 */
	static boolean applies(BatchKv kv, Kernels kernels, Kernels.BlockWeights[] rows, int neurons) {
		return kv.arena != null && kernels.prefill() == Kernels.Prefill.ONEDNN && Kernels.masksDense(rows, neurons);
	}

	/**
	 * x [B, D] -> [B, D].
	 * @param keep [B, F] float32 (1: the row reads the neuron), or null when every row is
	 * dense
	 */
	static NDArray step(NDArray x, RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm, FeedForward.Weights ff,
			RotaryEmbedding.Angles rotary, BatchKv kv, Kernels kernels, NDArray keep) {
		PackedWeights packed = kernels.packed();
		Attention.Weights weights = attention.weights();
		double scale = attention.scoreScale();
		NDArray bias = weights.queryKeyValueBias();
		int layer = attention.layer();
		IValue[] inputs = { tensor(x), tensor(attentionNorm.weight()), tensor(ffnNorm.weight()),
				tensor(attentionNorm.epsilon()), tensor(packed.of(weights.queryKeyValue())),
				IValue.from((bias == null) ? Module.NONE : (PtNDArray) bias), tensor(rotary.rotation()),
				tensor(kv.arena.keys(layer)), tensor(kv.arena.values(layer)), tensor(kv.write), tensor(kv.gather),
				tensor(kv.masked), IValue.from(attention.heads()), IValue.from(Double.isNaN(scale) ? 1.0 : scale),
				IValue.from(!Double.isNaN(scale)), tensor(packed.of(weights.output())), tensor(packed.of(ff.gateUp())),
				tensor(packed.of(ff.down())), IValue.from((keep == null) ? Module.NONE : (PtNDArray) keep),
				IValue.from(ff.activation().code()) };
		return ScriptedProducts.run(Module.INSTANCE, "step", x.getManager(), inputs);
	}

	/**
	 * One generated token of one sequence ({@link Kernels.Decode#LAYER}): x [1, D] -> [1,
	 * D], the sequence's cache written at {@code positions.position()}.
	 * @param feedForward the weights the token's feed-forward block reads (the dense
	 * block, or the sequence's gathered experts)
	 * @param packed packed copies of those weights ({@link Kernels#halfPacked}), or null:
	 * then every product of the layer reads plain weights, else every one reads a packed
	 * copy (the attention's are the model's). One kind of product per layer: mixing
	 * oneDNN's and libtorch's in one layer decoded about 5% slower than libtorch's alone
	 * on a 1.5B model
	 */
	static NDArray stepOne(NDArray x, RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm,
			Kernels.BlockWeights feedForward, Kernels.Packed packed, Positions positions, KvCache cache,
			Kernels kernels) {
		Attention.Weights weights = attention.weights();
		double scale = attention.scoreScale();
		NDArray bias = weights.queryKeyValueBias();
		int layer = attention.layer();
		boolean reads = packed != null;
		IValue[] inputs = { tensor(x), tensor(attentionNorm.weight()), tensor(ffnNorm.weight()),
				tensor(attentionNorm.epsilon()), tensor(readable(weights.queryKeyValue(), kernels, reads)),
				IValue.from((bias == null) ? Module.NONE : (PtNDArray) bias), tensor(positions.rotary().rotation()),
				tensor(cache.layerKeys(layer)), tensor(cache.layerValues(layer)), IValue.from(positions.position()),
				IValue.from(positions.keyStart()), IValue.from(attention.heads()),
				IValue.from(Double.isNaN(scale) ? 1.0 : scale), IValue.from(!Double.isNaN(scale)),
				tensor(readable(weights.output(), kernels, reads)),
				tensor(reads ? packed.gateUp() : feedForward.gateUp()),
				tensor(reads ? packed.down() : feedForward.down()), IValue.from(feedForward.activation().code()) };
		return ScriptedProducts.run(Module.INSTANCE, "step_one", x.getManager(), inputs);
	}

	/**
	 * One generated token of one sequence in the {@link Kernels.Decode#NATIVE} form: the
	 * whole layer in one native call ({@link NativeKernels#layer}: norms, products,
	 * rotation, attention over the cache, residuals) instead of about fifty DJL
	 * operations. x [1, D] -> [1, D] in x's type, the sequence's cache written at
	 * {@code positions.position()}; the arithmetic is {@link #stepOne}'s.
	 * @param feedForward the weights the token's feed-forward block reads (the dense
	 * block, or the sequence's gathered experts), gated and without biases
	 * @param overwrite write the result over x and return x ({@link NativeKernels#layer})
	 */
	static NDArray stepOneNative(NDArray x, RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm,
			Kernels.BlockWeights feedForward, Positions positions, KvCache cache, boolean overwrite) {
		Attention.Weights weights = attention.weights();
		double scale = attention.scoreScale();
		int layer = attention.layer();
		return NativeKernels.layer(x, attentionNorm.weight(), ffnNorm.weight(), attentionNorm.epsilonValue(),
				weights.queryKeyValue(), weights.queryKeyValueBias(), weights.output(), positions.rotary().rotation(),
				new NDArray[] { cache.storedKeys(layer) }, new NDArray[] { cache.storedValues(layer) },
				new int[] { cache.storedFirst() }, new int[] { positions.position() },
				new int[] { positions.keyStart() }, attention.heads(), Double.isNaN(scale) ? 1f : (float) scale,
				feedForward.gateUp(), feedForward.down(), feedForward.activation(), null, null, null, overwrite);
	}

	/**
	 * T tokens of one sequence's prompt in the {@link Kernels.Prefill#NATIVE} form: the
	 * whole layer in one native call ({@link NativeKernels#layer}), each row a token at
	 * its position, attending over the cache up to itself (within the sliding window, if
	 * any), each weight read once for all the rows. x [T, D] -> [T, D] in x's type; the
	 * cache written at [position, position + T).
	 * @param ff the dense block, which a prompt runs whole
	 * @param statistic [F] that the call adds GRIFFIN's prompt statistic of the T tokens
	 * to, or null
	 */
	static NDArray promptNative(NDArray x, RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm,
			FeedForward.Weights ff, Positions positions, KvCache cache, double[] statistic) {
		int t = Math.toIntExact(x.getShape().get(0));
		int position = positions.position();
		if (position + (long) t > cache.capacity()) {
			throw new IllegalStateException("KV cache overflow: position %d + %d tokens > capacity %d"
				.formatted(position, t, cache.capacity()));
		}
		Attention.Weights weights = attention.weights();
		double scale = attention.scoreScale();
		int layer = attention.layer();
		NDArray[] keys = new NDArray[t];
		NDArray[] values = new NDArray[t];
		Arrays.fill(keys, cache.storedKeys(layer));
		Arrays.fill(values, cache.storedValues(layer));
		int[] firsts = new int[t];
		Arrays.fill(firsts, cache.storedFirst());
		int[] at = new int[t];
		int[] starts = new int[t];
		for (int i = 0; i < t; i++) {
			at[i] = position + i;
			starts[i] = positions.keyStart(i);
		}
		return NativeKernels.layer(x, attentionNorm.weight(), ffnNorm.weight(), attentionNorm.epsilonValue(),
				weights.queryKeyValue(), weights.queryKeyValueBias(), weights.output(), positions.rotary().rotation(),
				keys, values, firsts, at, starts, attention.heads(), Double.isNaN(scale) ? 1f : (float) scale,
				ff.gateUp(), ff.down(), ff.activation(), null, statistic, null, false);
	}

	/**
	 * One generated token of each of B sequences in the {@link Kernels.Decode#NATIVE}
	 * form: the whole layer in one native call ({@link NativeKernels#layer}), each weight
	 * read once for all the rows, each row attending over its own cache wherever it lives
	 * (its own tensors or an arena's range). x [B, D] -> [B, D] in x's type.
	 * @param ff the dense block, which every row reads
	 * @param keep [B, F] float32 (1: the row reads that neuron), or null when every row
	 * is dense
	 * @param statistic [S F] that the call adds GRIFFIN's statistic of the recording
	 * rows' activations to, row b's to its part {@code parts[b]}; or null (with parts)
	 * @param parts each row's part of the statistic, -1 for a row that records nothing
	 * @param overwrite write the result over x and return x ({@link NativeKernels#layer})
	 */
	static NDArray stepNative(NDArray x, RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm,
			FeedForward.Weights ff, RotaryEmbedding.Angles rotary, BatchKv kv, NDArray keep, double[] statistic,
			int[] parts, boolean overwrite) {
		int b = kv.positions.length;
		int[] starts = new int[b];
		for (int i = 0; i < b; i++) {
			starts[i] = Math.toIntExact(kv.starts[i]);
		}
		return rowsNative(x, attentionNorm, attention, ffnNorm, ff, rotary.rotation(), kv.caches, kv.positions, starts,
				keep, statistic, parts, overwrite);
	}

	/**
	 * The prompt chunks of several sequences in the {@link Kernels.Prefill#NATIVE} form:
	 * the whole layer in one native call, each weight read once for all their tokens. Row
	 * r is a token at {@code positions[r]} of the cache {@code caches[r]}; a sequence's
	 * rows are consecutive and in order, and every row's key and value are written before
	 * any row attends, so each row sees its own sequence's earlier rows. x [R, D] -> [R,
	 * D] in x's type.
	 * @param ff the dense block, which a prompt runs whole
	 * @param rotation [R, Dh, Dh], each row's
	 * @param statistic [S F] that the call adds GRIFFIN's prompt statistic of each
	 * sequence's rows to, its part {@code owners[r]} for row r; or null (with owners)
	 */
	static NDArray promptsNative(NDArray x, RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm,
			FeedForward.Weights ff, NDArray rotation, KvCache[] caches, int[] positions, int[] starts,
			double[] statistic, int[] owners) {
		return rowsNative(x, attentionNorm, attention, ffnNorm, ff, rotation, caches, positions, starts, null,
				statistic, owners, false);
	}

	/**
	 * Rows of one call, each at its position of its own cache
	 * ({@link NativeKernels#layer}).
	 */
	private static NDArray rowsNative(NDArray x, RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm,
			FeedForward.Weights ff, NDArray rotation, KvCache[] caches, int[] positions, int[] starts, NDArray keep,
			double[] statistic, int[] owners, boolean overwrite) {
		Attention.Weights weights = attention.weights();
		double scale = attention.scoreScale();
		int layer = attention.layer();
		int b = positions.length;
		NDArray[] keys = new NDArray[b];
		NDArray[] values = new NDArray[b];
		int[] firsts = new int[b];
		for (int i = 0; i < b; i++) {
			keys[i] = caches[i].storedKeys(layer);
			values[i] = caches[i].storedValues(layer);
			firsts[i] = caches[i].storedFirst();
		}
		return NativeKernels.layer(x, attentionNorm.weight(), ffnNorm.weight(), attentionNorm.epsilonValue(),
				weights.queryKeyValue(), weights.queryKeyValueBias(), weights.output(), rotation, keys, values, firsts,
				positions, starts, attention.heads(), Double.isNaN(scale) ? 1f : (float) scale, ff.gateUp(), ff.down(),
				ff.activation(), keep, statistic, owners, overwrite);
	}

	/**
	 * A weight's packed float16 copy when the layer reads them and it has one, else the
	 * weight.
	 */
	private static NDArray readable(NDArray weight, Kernels kernels, boolean packed) {
		NDArray half = packed ? kernels.halfPacked(weight) : null;
		return (half != null) ? half : weight;
	}

	private static IValue tensor(NDArray array) {
		return IValue.from((PtNDArray) array);
	}

}

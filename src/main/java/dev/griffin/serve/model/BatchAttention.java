package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;

/**
 * A batched decode step's attention in one call per layer: each row writes its new key
 * and value into its own KV cache and attends over its own window of it, as a lone step's
 * attention does, inside libtorch. From Java the same work is about a dozen DJL
 * operations per row and layer, which at 16 rows cost more than the step's weight reads.
 * When every row's cache is a range of one {@link KvArena}, a second form writes and
 * gathers every row's window in one operation each and attends as one padded batch. The
 * work runs in a weightless TorchScript module
 * ({@code tools/torchscript/make_batch_attention.py}).
 */
final class BatchAttention {

	private static final class Module {

		static final PtSymbolBlock INSTANCE = ScriptedProducts.module("batch-attention.pt");

	}

	private BatchAttention() {
	}

	/**
	 * @param qk [B, H+KVH, Dh], rotated queries then keys
	 * @param v [B, KVH*Dh]
	 * @param keys row i's key cache of this layer, [KVH, capacity, Dh]
	 * @param values row i's value cache of this layer
	 * @param positions row i's position (where its key and value are written)
	 * @param starts the first cached position row i attends to
	 * @param scale the scores' scale, or NaN when the weights already carry it
	 * @param softCap the scaled scores' soft cap (Gemma 2), 0 for none
	 * @return [B, H*Dh]
	 */
	static NDArray attend(NDArray qk, NDArray v, NDArray[] keys, NDArray[] values, long[] positions, long[] starts,
			int heads, double scale, double softCap) {
		PtNDArray[] keyArrays = new PtNDArray[keys.length];
		PtNDArray[] valueArrays = new PtNDArray[values.length];
		for (int i = 0; i < keys.length; i++) {
			keyArrays[i] = (PtNDArray) keys[i];
			valueArrays[i] = (PtNDArray) values[i];
		}
		IValue[] inputs = { IValue.from((PtNDArray) qk), IValue.from((PtNDArray) v), IValue.listFrom(keyArrays),
				IValue.listFrom(valueArrays), IValue.listFrom(positions), IValue.listFrom(starts), IValue.from(heads),
				IValue.from(Double.isNaN(scale) ? 1.0 : scale), IValue.from(!Double.isNaN(scale)),
				IValue.from(softCap) };
		return ScriptedProducts.run(Module.INSTANCE, "attend", qk.getManager(), inputs);
	}

	/**
	 * The same for rows whose caches are ranges of one {@link KvArena}, in a few
	 * operations whatever B is ({@link BatchKv}).
	 * @param keys the arena's keys of this layer, [KVH, tokens, Dh]
	 * @param values the arena's values of this layer
	 * @param write [B] int64, the arena token of row i's new key and value
	 * @param gather [B*W] int64, the arena tokens each row attends over, row after row
	 * @param masked [B, 1, 1, W] boolean, true where a gathered token is outside the
	 * row's window
	 * @return [B, H*Dh]
	 */
	static NDArray attendGathered(NDArray qk, NDArray v, NDArray keys, NDArray values, NDArray write, NDArray gather,
			NDArray masked, int heads, double scale, double softCap) {
		IValue[] inputs = { IValue.from((PtNDArray) qk), IValue.from((PtNDArray) v), IValue.from((PtNDArray) keys),
				IValue.from((PtNDArray) values), IValue.from((PtNDArray) write), IValue.from((PtNDArray) gather),
				IValue.from((PtNDArray) masked), IValue.from(heads), IValue.from(Double.isNaN(scale) ? 1.0 : scale),
				IValue.from(!Double.isNaN(scale)), IValue.from(softCap) };
		return ScriptedProducts.run(Module.INSTANCE, "attend_gathered", qk.getManager(), inputs);
	}

}

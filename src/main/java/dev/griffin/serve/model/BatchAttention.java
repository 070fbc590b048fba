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
 * The work runs in a weightless TorchScript module
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
	 * @return [B, H*Dh]
	 */
	static NDArray attend(NDArray qk, NDArray v, NDArray[] keys, NDArray[] values, long[] positions, long[] starts,
			int heads, double scale) {
		PtNDArray[] keyArrays = new PtNDArray[keys.length];
		PtNDArray[] valueArrays = new PtNDArray[values.length];
		for (int i = 0; i < keys.length; i++) {
			keyArrays[i] = (PtNDArray) keys[i];
			valueArrays[i] = (PtNDArray) values[i];
		}
		IValue[] inputs = { IValue.from((PtNDArray) qk), IValue.from((PtNDArray) v), IValue.listFrom(keyArrays),
				IValue.listFrom(valueArrays), IValue.listFrom(positions), IValue.listFrom(starts), IValue.from(heads),
				IValue.from(Double.isNaN(scale) ? 1.0 : scale), IValue.from(!Double.isNaN(scale)) };
		return ScriptedProducts.run(Module.INSTANCE, "attend", qk.getManager(), inputs);
	}

}

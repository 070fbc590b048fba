package dev.griffin.serve.griffin;

import ai.djl.ndarray.NDArray;

/**
 * One layer's experts and the weights gathered for them, owned by a sequence (or shared
 * read-only by the sequences of an expert-cache entry).
 *
 * @param indices E, ascending neuron indices, length k
 * @param gateUp [2k, D]: W_gate[E] then W_up[E]
 * @param downTransposed [k, D]: W_down[:, E]^T
 */
public record LayerExperts(int[] indices, NDArray gateUp, NDArray downTransposed) {

	public int count() {
		return this.indices.length;
	}

	public long bytes() {
		return (this.gateUp == null) ? 0 : (this.gateUp.getShape().size() + this.downTransposed.getShape().size())
				* this.gateUp.getDataType().getNumOfBytes();
	}

}

package dev.griffin.serve.griffin;

import ai.djl.ndarray.NDArray;

import dev.griffin.serve.model.FeedForward;

/**
 * One layer's experts and the weights gathered for them, owned by a sequence (or shared
 * read-only by the sequences of a prompt cache entry).
 *
 * @param indices E, ascending neuron indices, length k
 * @param gateUp [2k, D]: W_gate[E] then W_up[E]
 * @param down [D, k]: W_down[:, E]
 */
public record LayerExperts(int[] indices, NDArray gateUp, NDArray down) implements FeedForward.Prepared {

	public int count() {
		return this.indices.length;
	}

	@Override
	public long bytes() {
		return (this.gateUp == null) ? 0 : (this.gateUp.getShape().size() + this.down.getShape().size())
				* this.gateUp.getDataType().getNumOfBytes();
	}

	@Override
	public void close() {
		if (this.gateUp != null) {
			this.gateUp.close();
			this.down.close();
		}
	}

}

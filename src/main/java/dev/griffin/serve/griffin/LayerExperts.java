package dev.griffin.serve.griffin;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.Kernels;

/**
 * One layer's experts and the weights gathered for them, owned by a sequence (or shared
 * read-only by the sequences of a prompt cache entry).
 *
 * @param indices E, ascending neuron indices, length k
 * @param gateUp [2k, D]: W_gate[E] then W_up[E]
 * @param down [D, k]: W_down[:, E]
 * @param halves views of the two halves of the experts, for the split decode form (null
 * for fewer than two)
 */
public record LayerExperts(int[] indices, NDArray gateUp, NDArray down,
		Kernels.Halves halves) implements FeedForward.Prepared, Kernels.GatedWeights {

	@Override
	public int[] neurons() {
		return this.indices;
	}

	public int count() {
		return this.indices.length;
	}

	@Override
	public long bytes() {
		return (this.gateUp == null) ? 0 : (this.gateUp.getShape().size() + this.down.getShape().size())
				* this.gateUp.getDataType().getNumOfBytes();
	}

	/** Moves the gathered weights and their views to another manager. */
	void attach(NDManager owner) {
		if (this.gateUp != null) {
			this.gateUp.attach(owner);
			this.down.attach(owner);
		}
		if (this.halves != null) {
			this.halves.attach(owner);
		}
	}

	@Override
	public void close() {
		if (this.halves != null) {
			this.halves.close();
		}
		if (this.gateUp != null) {
			this.gateUp.close();
			this.down.close();
		}
	}

}

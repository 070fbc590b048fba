package dev.griffin.serve.griffin;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.index.NDIndex;

import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.Kernels;

/**
 * One sequence's experts in one layer, and the weights gathered for them: W_gate[E] and
 * W_up[E] as one [2k, D] matrix, W_down[:, E] as [D, k]. The weights are gathered the
 * first time a product asks for them, which only a product with the sequence's own
 * weights does (the batch-1 decode path, or a batch's per-row form); a batch that reads
 * the dense block masked to each row's experts needs the indices alone, so a sequence
 * that always decodes in such batches never gathers. The gathered weights belong to a
 * manager of their own under the dense weights' manager, freed by {@link #close}. Used by
 * one thread at a time (the sequence's).
 */
public final class LayerExperts implements Kernels.GatedWeights, AutoCloseable {

	private final FeedForward.Weights dense;

	private final int[] indices;

	private NDManager owner;

	private NDArray gateUp;

	private NDArray down;

	private Kernels.Halves halves;

	/**
	 * @param dense the layer's dense weights
	 * @param indices E, ascending neuron indices
	 */
	LayerExperts(FeedForward.Weights dense, int[] indices) {
		this.dense = dense;
		this.indices = indices;
	}

	/** E, ascending neuron indices, length k. */
	public int[] indices() {
		return this.indices;
	}

	@Override
	public int[] neurons() {
		return this.indices;
	}

	public int count() {
		return this.indices.length;
	}

	/** [2k, D]: W_gate[E] then W_up[E], gathered now if not yet; null when k is 0. */
	@Override
	public NDArray gateUp() {
		gather();
		return this.gateUp;
	}

	/** [D, k]: W_down[:, E], gathered now if not yet; null when k is 0. */
	@Override
	public NDArray down() {
		gather();
		return this.down;
	}

	/** Views of the two halves of the experts, or null for fewer than two. */
	@Override
	public Kernels.Halves halves() {
		gather();
		return this.halves;
	}

	/** Whether the weights have been gathered. */
	public boolean gathered() {
		return this.owner != null;
	}

	/** Bytes of the gathered weights (0 before they are gathered). */
	public long bytes() {
		return (this.gateUp == null) ? 0 : (this.gateUp.getShape().size() + this.down.getShape().size())
				* this.gateUp.getDataType().getNumOfBytes();
	}

	private void gather() {
		if (this.owner != null || this.indices.length == 0) {
			return;
		}
		int f = this.dense.intermediateSize();
		int k = this.indices.length;
		long[] rows = new long[2 * k];
		for (int i = 0; i < k; i++) {
			rows[i] = this.indices[i];
			rows[k + i] = (long) this.indices[i] + f;
		}
		NDManager gathered = this.dense.gateUp().getManager().newSubManager();
		NDArray gateUp;
		NDArray down;
		Kernels.Halves halves;
		try (NDManager scratch = gathered.newSubManager()) {
			NDArray rowIndex = scratch.create(rows);
			NDArray neuronIndex = rowIndex.get(new NDIndex().addSliceDim(0, k));
			gateUp = Kernels.select(this.dense.gateUp(), 0, rowIndex); // [2k, D]
			down = Kernels.select(this.dense.down(), 1, neuronIndex); // [D, k]
			gateUp.attach(gathered);
			down.attach(gathered);
			// a pass's scope must not free them when it ends
			NDScope.unregister(gateUp, down);
			halves = Kernels.Halves.of(gateUp, down, k); // views, in gathered's care
		}
		catch (RuntimeException ex) {
			gathered.close();
			throw ex;
		}
		this.owner = gathered;
		this.gateUp = gateUp;
		this.down = down;
		this.halves = halves;
	}

	/** Frees the gathered weights, if any. */
	@Override
	public void close() {
		if (this.owner != null) {
			this.owner.close();
			this.owner = null;
			this.gateUp = null;
			this.down = null;
			this.halves = null;
		}
	}

	/**
	 * The experts a prompt selected, as a prompt cache entry keeps them: the indices
	 * only. A sequence that starts from the entry gathers its own weights if it needs
	 * them.
	 *
	 * @param indices E, ascending
	 */
	record Choice(int[] indices) implements FeedForward.Prepared {

		@Override
		public long bytes() {
			return (long) this.indices.length * Integer.BYTES;
		}

		@Override
		public void close() {
		}

	}

}

package dev.griffin.serve.griffin;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.index.NDIndex;

import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.HiddenActivation;
import dev.griffin.serve.model.Kernels;

/**
 * One sequence's experts in one layer, and the weights gathered for them: W_gate[E] and
 * W_up[E] as one [2k, D] matrix (a non-gated block's W_up[E] as [k, D], and b_up[E]),
 * W_down[:, E] as [D, k]; b_down stays the dense block's. The weights are gathered the
 * first time a product asks for them, which only a product with the sequence's own
 * weights does (the batch-1 decode path, or a batch's per-row form); a batch that reads
 * the dense block masked to each row's experts needs the indices alone, so a sequence
 * that always decodes in such batches never gathers. Where the model's one-row products
 * read packed float16 copies ({@link Kernels#packsHalf}), the gathered weights are packed
 * too and the plain ones freed, so that a sequence holds one copy of its experts; a
 * product that then asks for plain weights gathers them again. The weights belong to a
 * manager of their own under the dense weights' manager, freed by {@link #close}. Used by
 * one thread at a time (the sequence's).
 */
public final class LayerExperts implements Kernels.BlockWeights, AutoCloseable {

	private final FeedForward.Weights dense;

	private final int[] indices;

	private NDManager owner;

	private NDArray gateUp;

	private NDArray down;

	private NDArray upBias;

	private Kernels.Halves halves;

	private Kernels.Packed packed;

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

	/**
	 * [2k, D]: W_gate[E] then W_up[E] ([k, D], W_up[E], for a non-gated block), gathered
	 * now if not yet; null when k is 0.
	 */
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

	/** The dense block's. */
	@Override
	public HiddenActivation activation() {
		return this.dense.activation();
	}

	/** The dense block's. */
	@Override
	public boolean gated() {
		return this.dense.gated();
	}

	/**
	 * b_up[E], gathered now if not yet (and kept with the packed weights: it is k
	 * values); null when k is 0 or the block has no bias.
	 */
	@Override
	public NDArray upBias() {
		if (this.upBias == null && this.dense.upBias() != null && this.indices.length > 0) {
			NDManager owner = owner();
			NDArray bias;
			try (NDManager scratch = owner.newSubManager()) {
				long[] neurons = new long[this.indices.length];
				for (int i = 0; i < neurons.length; i++) {
					neurons[i] = this.indices[i];
				}
				bias = Kernels.select(this.dense.upBias(), 0, scratch.create(neurons)); // [k]
				bias.attach(owner);
				NDScope.unregister(bias);
			}
			this.upBias = bias;
		}
		return this.upBias;
	}

	/**
	 * The dense block's b_down: every expert's output adds it, as the dense block's does.
	 */
	@Override
	public NDArray downBias() {
		return this.dense.downBias();
	}

	/** Views of the two halves of the experts, or null for fewer than two. */
	@Override
	public Kernels.Halves halves() {
		gather();
		return this.halves;
	}

	/**
	 * Packed copies of the experts' weights when {@code kernels} packs this layer's
	 * float16 weights, made now if not yet (the plain gathered weights are freed then);
	 * null otherwise or when k is 0.
	 */
	@Override
	public Kernels.Packed packed(Kernels kernels) {
		if (this.packed == null && this.indices.length > 0 && kernels.packsHalf(this.dense.gateUp())) {
			gather();
			// in the gathered weights' manager (this.owner), out of any pass's scope
			NDArray gateUpCopy = Kernels.pack(this.gateUp);
			NDScope.unregister(gateUpCopy);
			NDArray downCopy = Kernels.pack(this.down);
			NDScope.unregister(downCopy);
			this.packed = new Kernels.Packed(gateUpCopy, downCopy);
			freePlain();
		}
		return this.packed;
	}

	/**
	 * Readies what this sequence's own one-row products read under {@code kernels}: the
	 * packed copies where it packs them, else the plain gathered weights.
	 */
	public void prepare(Kernels kernels) {
		if (packed(kernels) == null) {
			gather();
		}
	}

	/** Whether the weights have been gathered (plain or packed). */
	public boolean gathered() {
		return this.gateUp != null || this.packed != null;
	}

	/** Whether the weights are held packed. */
	public boolean packed() {
		return this.packed != null;
	}

	/**
	 * Bytes of the gathered weights, plain and packed (a packed copy counted at its
	 * matrix's size); 0 before they are gathered.
	 */
	public long bytes() {
		long bytes = 0;
		for (NDArray array : new NDArray[] { this.gateUp, this.down, this.upBias,
				(this.packed == null) ? null : this.packed.gateUp(),
				(this.packed == null) ? null : this.packed.down() }) {
			bytes += (array == null) ? 0 : array.getShape().size() * array.getDataType().getNumOfBytes();
		}
		return bytes;
	}

	private void gather() {
		if (this.gateUp != null || this.indices.length == 0) {
			return;
		}
		int k = this.indices.length;
		boolean gated = this.dense.gated();
		NDManager gathered = owner();
		NDArray gateUp;
		NDArray down;
		Kernels.Halves halves;
		try {
			if (gated) {
				// [2k, D]: gate rows E then up rows F + E; [D, k]
				NDArray[] both = Kernels.gatherExperts(this.dense.gateUp(), this.dense.down(), this.indices, gathered);
				gateUp = both[0];
				down = both[1];
			}
			else {
				try (NDManager scratch = gathered.newSubManager()) {
					long[] rows = new long[k];
					for (int i = 0; i < k; i++) {
						rows[i] = this.indices[i];
					}
					NDArray rowIndex = scratch.create(rows);
					gateUp = Kernels.select(this.dense.gateUp(), 0, rowIndex); // [k, D]
					down = Kernels.select(this.dense.down(), 1, rowIndex); // [D, k]
					gateUp.attach(gathered);
					down.attach(gathered);
				}
			}
			// a pass's scope must not free them when it ends
			NDScope.unregister(gateUp, down);
			// views, in gathered's care
			halves = gated ? Kernels.Halves.of(gateUp, down, k) : null;
		}
		catch (RuntimeException ex) {
			close();
			throw ex;
		}
		this.gateUp = gateUp;
		this.down = down;
		this.halves = halves;
	}

	/**
	 * The manager of this sequence's gathered weights, under the dense weights' manager,
	 * made on first use.
	 */
	private NDManager owner() {
		if (this.owner == null) {
			this.owner = this.dense.gateUp().getManager().newSubManager();
		}
		return this.owner;
	}

	/** Frees the plain gathered weights and their views, keeping the packed copies. */
	private void freePlain() {
		if (this.halves != null) {
			for (NDArray view : new NDArray[] { this.halves.gateA(), this.halves.upA(), this.halves.downA(),
					this.halves.gateB(), this.halves.upB(), this.halves.downB() }) {
				view.close();
			}
		}
		this.gateUp.close();
		this.down.close();
		this.gateUp = null;
		this.down = null;
		this.halves = null;
	}

	/** Frees the gathered weights, plain and packed, if any. */
	@Override
	public void close() {
		if (this.owner != null) {
			this.owner.close();
			this.owner = null;
		}
		this.gateUp = null;
		this.down = null;
		this.upBias = null;
		this.halves = null;
		this.packed = null;
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

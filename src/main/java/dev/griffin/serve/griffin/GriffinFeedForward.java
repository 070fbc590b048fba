package dev.griffin.serve.griffin;

import java.util.SplittableRandom;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;

import dev.griffin.serve.model.DenseFeedForward;
import dev.griffin.serve.model.FeedForward;

/**
 * A GRIFFIN feed-forward block (Dong, Chen, Chi, COLM 2024, arXiv 2404.01365, algorithm
 * 1).
 * <ul>
 * <li>Prompt: the full block, {@code out = Z W_down^T} with
 * {@code Z = silu(x W_gate^T) * (x W_up^T)}, and the statistic
 * {@code s_j^2 += sum_t (Z_t / ||Z_t||)^2} accumulated per sequence.</li>
 * <li>End of prompt: {@code E = topk(s, k)}, k = floor(F * density); W_gate[E], W_up[E]
 * and W_down[:, E] are gathered into the sequence's state.</li>
 * <li>Generation:
 * {@code out = (silu(x W_gate[E]^T) * (x W_up[E]^T)) W_down[:, E]^T}.</li>
 * </ul>
 * The shared dense weights are never mutated; selection and gathered weights belong to
 * the sequence.
 */
public final class GriffinFeedForward implements FeedForward {

	private final Weights dense;

	private final int experts;

	private final SelectionMethod method;

	private final int[] staticIndices;

	/**
	 * @param dense the layer's dense weights
	 * @param experts k, the number of neurons generation keeps
	 * @param method how experts are chosen
	 * @param manager owner of the static selection of {@code magnitude}
	 */
	public GriffinFeedForward(Weights dense, int experts, SelectionMethod method, NDManager manager) {
		if (experts < 0 || experts > dense.intermediateSize()) {
			throw new IllegalArgumentException(
					"experts must be in [0, %d], got %d".formatted(dense.intermediateSize(), experts));
		}
		this.dense = dense;
		this.experts = experts;
		this.method = method;
		this.staticIndices = (method == SelectionMethod.MAGNITUDE) ? magnitudeIndices(dense, experts, manager) : null;
	}

	public int experts() {
		return this.experts;
	}

	public SelectionMethod method() {
		return this.method;
	}

	@Override
	public Weights weights() {
		return this.dense;
	}

	@Override
	public State newState(long seed) {
		return new GriffinState(new SplittableRandom(seed));
	}

	@Override
	public NDArray forward(NDArray x, Phase phase, State state) {
		GriffinState s = (GriffinState) state;
		return switch (phase) {
			case PROMPT -> {
				if (s.experts != null) {
					throw new IllegalStateException("prompt tokens after the experts were selected");
				}
				// [T, F]
				NDArray z = DenseFeedForward.activations(x, this.dense.gateUp());
				if (this.method.usesPrompt()) {
					s.accumulate(ExpertSelector.sumOfSquares(z));
				}
				yield DenseFeedForward.output(z, this.dense.down()); // [T, D]
			}
			case GENERATION -> {
				LayerExperts e = s.experts;
				if (e == null) {
					throw new IllegalStateException("generation before the prompt selected experts");
				}
				yield generate(x, e);
			}
			case CLASSIFICATION -> classify(x, s);
		};
	}

	private NDArray generate(NDArray x, LayerExperts e) {
		if (e.count() == 0) {
			return x.zerosLike(); // [T, D]
		}
		NDArray z = DenseFeedForward.activations(x, e.gateUp()); // [T, k]
		return DenseFeedForward.output(z, e.down()); // [T, D]
	}

	/**
	 * Class mode: one pass; the statistic uses every token but the last (the only token,
	 * for a one-token input), and the last token's Z is masked to E.
	 */
	private NDArray classify(NDArray x, GriffinState s) {
		NDArray z = DenseFeedForward.activations(x, this.dense.gateUp()); // [T, F]
		long t = z.getShape().get(0);
		int[] selected;
		if (this.method.usesPrompt()) {
			NDArray prompt = (t > 1) ? z.get(new NDIndex(":{}", t - 1)) : z; // [T-1, F]
			s.accumulate(ExpertSelector.sumOfSquares(prompt));
			selected = ExpertSelector.select(s.sumOfSquares, this.experts, this.method, s.random);
		}
		else {
			selected = this.staticIndices;
		}
		float[] mask = new float[this.dense.intermediateSize()];
		for (int index : selected) {
			mask[index] = 1f;
		}
		NDManager manager = x.getManager();
		// [T, F]: ones for the prompt tokens, the expert mask for the last token
		NDArray rowMask = manager.create(mask, new Shape(1, mask.length)).toType(z.getDataType(), false);
		if (t > 1) {
			rowMask = manager.ones(new Shape(t - 1, mask.length), z.getDataType()).concat(rowMask, 0);
		}
		return DenseFeedForward.output(z.mul(rowMask), this.dense.down()); // [T, D]
	}

	/** Gathers W_gate[E], W_up[E] and W_down[:, E]. */
	static LayerExperts gather(Weights dense, int[] indices, NDManager manager) {
		if (indices.length == 0) {
			return new LayerExperts(indices, null, null);
		}
		int f = dense.intermediateSize();
		long[] rows = new long[2 * indices.length];
		for (int i = 0; i < indices.length; i++) {
			rows[i] = indices[i];
			rows[indices.length + i] = (long) indices[i] + f;
		}
		NDArray gateUp;
		NDArray down;
		try (NDManager scratch = manager.newSubManager()) {
			NDArray rowIndex = scratch.create(rows);
			NDArray neuronIndex = rowIndex.get(new NDIndex().addSliceDim(0, indices.length));
			gateUp = dense.gateUp().get(rowIndex); // [2k, D]
			// [D, k], contiguous
			down = dense.down().get(new NDIndex(":, {}", neuronIndex));
			gateUp.attach(manager);
			down.attach(manager);
		}
		NDScope.unregister(gateUp, down);
		return new LayerExperts(indices, gateUp, down);
	}

	/**
	 * The static baseline: the k neurons with the largest ||W_gate row|| * ||W_up row||.
	 */
	private static int[] magnitudeIndices(Weights dense, int k, NDManager manager) {
		double[] scores;
		try (NDManager scratch = manager.newSubManager()) {
			NDArray gateUp = dense.gateUp().toType(ai.djl.ndarray.types.DataType.FLOAT64, false);
			gateUp.attach(scratch);
			NDArray norms = gateUp.norm(new int[] { 1 }, false); // [2F]
			norms.attach(scratch);
			int f = dense.intermediateSize();
			NDArray product = norms.get(new NDIndex().addSliceDim(0, f))
				.mul(norms.get(new NDIndex().addSliceDim(f, 2L * f)));
			product.attach(scratch);
			scores = product.toDoubleArray(); // [F]
		}
		return ExpertSelector.select(scores, k, SelectionMethod.MAGNITUDE, null);
	}

	/** One sequence's GRIFFIN state for one layer. */
	public final class GriffinState implements State {

		private final SplittableRandom random;

		private double[] sumOfSquares;

		private LayerExperts experts;

		private boolean ownsExperts;

		GriffinState(SplittableRandom random) {
			this.random = random;
		}

		void accumulate(double[] squares) {
			if (this.sumOfSquares == null) {
				this.sumOfSquares = squares;
			}
			else {
				for (int j = 0; j < squares.length; j++) {
					this.sumOfSquares[j] += squares[j];
				}
			}
		}

		/** The prompt statistic s^2 so far (null before any prompt token). */
		public double[] sumOfSquares() {
			return (this.sumOfSquares != null) ? this.sumOfSquares.clone() : null;
		}

		public LayerExperts experts() {
			return this.experts;
		}

		/**
		 * Installs experts selected elsewhere (an expert-cache hit); they are shared, not
		 * owned.
		 */
		public void useExperts(LayerExperts shared) {
			if (this.experts != null) {
				throw new IllegalStateException("experts are already selected");
			}
			if (shared == null) {
				throw new IllegalArgumentException("a cached prompt without experts for a GRIFFIN layer");
			}
			this.experts = shared;
			this.ownsExperts = false;
		}

		/**
		 * Hands this sequence's experts to a cache entry: they move to {@code owner} and
		 * the entry, not this state, frees them.
		 */
		public LayerExperts shareExperts(NDManager owner) {
			if (this.experts == null || !this.ownsExperts) {
				throw new IllegalStateException("no experts of this sequence's own to share");
			}
			if (this.experts.gateUp() != null) {
				this.experts.gateUp().attach(owner);
				this.experts.down().attach(owner);
			}
			this.ownsExperts = false;
			return this.experts;
		}

		@Override
		public void finishPrompt(NDManager manager) {
			if (this.experts != null) {
				return;
			}
			int[] selected;
			if (GriffinFeedForward.this.method.usesPrompt()) {
				if (this.sumOfSquares == null) {
					throw new IllegalStateException("no prompt statistic: the prompt phase never ran");
				}
				selected = ExpertSelector.select(this.sumOfSquares, GriffinFeedForward.this.experts,
						GriffinFeedForward.this.method, this.random);
			}
			else {
				selected = GriffinFeedForward.this.staticIndices;
			}
			this.experts = gather(GriffinFeedForward.this.dense, selected, manager);
			this.ownsExperts = true;
		}

		@Override
		public void close() {
			if (this.ownsExperts && this.experts.gateUp() != null) {
				this.experts.gateUp().close();
				this.experts.down().close();
			}
			this.experts = null;
		}

	}

}

package dev.griffin.serve.griffin;

import java.util.SplittableRandom;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;

import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.Kernels;

/**
 * A GRIFFIN feed-forward block (Dong, Chen, Chi, COLM 2024, arXiv 2404.01365, algorithm
 * 1).
 * <ul>
 * <li>Prompt: the full block, {@code out = Z W_down^T} with
 * {@code Z = act(x W_gate^T) * (x W_up^T)} ({@code act(x W_up^T + b_up)} in a non-gated
 * block, as the reference's OPT variant takes it; its {@code b_down} is added to every
 * output), and the statistic {@code s_j^2 += sum_t (Z_t / ||Z_t||)^2} accumulated per
 * sequence.</li>
 * <li>End of prompt: {@code E = topk(s, k)}, k = floor(F * density); W_gate[E], W_up[E]
 * and W_down[:, E] are gathered into the sequence's state when a product first needs them
 * ({@link LayerExperts}).</li>
 * <li>Generation: {@code out = (act(x W_gate[E]^T) * (x W_up[E]^T)) W_down[:, E]^T}.</li>
 * </ul>
 * The shared dense weights are never mutated; selection and gathered weights belong to
 * the sequence.
 */
public final class GriffinFeedForward implements FeedForward {

	/** {@code delayed}: how many generated tokens run the full block before selection. */
	public static final int DELAY_TOKENS = 8;

	/**
	 * {@code delayed}: the share of the statistic the generated tokens hold at selection
	 * (each token's normalised activations sum to 1, so a prompt of P tokens holds P).
	 */
	public static final double REPLY_SHARE = 0.5;

	private final Weights dense;

	private final int expertCount;

	private final SelectionMethod method;

	private final int[] staticIndices;

	/** {@code wina}'s weights of s^2: ||W_down[:, j]||^2; null for other methods. */
	private final double[] downNormsSquared;

	/** {@code glass}'s prior; null for other methods. */
	private final NeuronPrior prior;

	private final int layer;

	/**
	 * A block whose method needs no neuron prior.
	 * @param dense the layer's dense weights
	 * @param expertCount k, the number of neurons generation keeps
	 * @param method how experts are chosen
	 * @param manager owner of the scratch work of {@code magnitude} and {@code wina}
	 */
	public GriffinFeedForward(Weights dense, int expertCount, SelectionMethod method, NDManager manager) {
		this(dense, expertCount, method, manager, null, 0);
	}

	/**
	 * @param prior the model's neuron prior ({@code glass} only)
	 * @param layer this block's layer, its row of the prior
	 */
	public GriffinFeedForward(Weights dense, int expertCount, SelectionMethod method, NDManager manager,
			NeuronPrior prior, int layer) {
		if (expertCount < 0 || expertCount > dense.intermediateSize()) {
			throw new IllegalArgumentException(
					"expertCount must be in [0, %d], got %d".formatted(dense.intermediateSize(), expertCount));
		}
		this.dense = dense;
		this.expertCount = expertCount;
		this.method = method;
		if (method.blendsPrior() != (prior != null)) {
			throw new IllegalArgumentException(
					(prior == null) ? "the %s method needs a neuron prior".formatted(method.wireName())
							: "the %s method takes no neuron prior".formatted(method.wireName()));
		}
		this.staticIndices = (method == SelectionMethod.MAGNITUDE) ? magnitudeIndices(dense, expertCount, manager)
				: null;
		this.downNormsSquared = (method == SelectionMethod.WINA) ? downNormsSquared(dense, manager) : null;
		this.prior = prior;
		this.layer = layer;
	}

	/** k, the number of neurons each sequence's generation keeps. */
	public int expertCount() {
		return this.expertCount;
	}

	public SelectionMethod method() {
		return this.method;
	}

	@Override
	public boolean fusable() {
		return true;
	}

	@Override
	public Weights weights() {
		return this.dense;
	}

	@Override
	public State newState(long seed) {
		return new GriffinState(this, new SplittableRandom(seed));
	}

	/** The prompt runs the dense block; its statistic is all GRIFFIN records. */
	@Override
	public boolean promptFusable() {
		return true;
	}

	@Override
	public boolean recordsPrompt(State state) {
		checkPrompt((GriffinState) state);
		return this.method.usesPrompt();
	}

	@Override
	public void recordPrompt(State state, double[] sumOfSquares) {
		GriffinState s = (GriffinState) state;
		checkPrompt(s);
		s.accumulate(sumOfSquares);
	}

	private static void checkPrompt(GriffinState s) {
		if (s.experts() != null) {
			throw new IllegalStateException("prompt tokens after the experts were selected");
		}
	}

	@Override
	public NDArray forward(NDArray x, Phase phase, State state, Kernels kernels) {
		GriffinState s = (GriffinState) state;
		return switch (phase) {
			case PROMPT -> {
				checkPrompt(s);
				// [T, F]
				NDArray z = kernels.activations(x, this.dense);
				if (this.method.usesPrompt()) {
					s.accumulate(ExpertSelector.sumOfSquares(z));
				}
				yield kernels.output(z, this.dense); // [T, D]
			}
			case GENERATION -> {
				LayerExperts e = s.experts();
				if (e == null) {
					throw new IllegalStateException("generation before the prompt selected experts");
				}
				yield generate(x, e, kernels);
			}
		};
	}

	private static NDArray generate(NDArray x, LayerExperts e, Kernels kernels) {
		if (e.count() == 0) {
			return Kernels.withoutNeurons(x, e); // [T, D]
		}
		return kernels.feedForward(x, e); // [T, D]
	}

	/**
	 * Selects a sequence's experts at the end of its prompt; their weights are gathered
	 * when a product first needs them ({@link LayerExperts}).
	 * @param sumOfSquares the sequence's prompt statistic (unused by static methods)
	 */
	LayerExperts selectExperts(double[] sumOfSquares, SplittableRandom random) {
		int[] selected;
		if (this.method.usesPrompt()) {
			if (sumOfSquares == null) {
				throw new IllegalStateException("no prompt statistic: the prompt phase never ran");
			}
			selected = ExpertSelector.select(scores(sumOfSquares), this.expertCount, this.method, random);
		}
		else {
			selected = this.staticIndices;
		}
		return experts(selected);
	}

	/** What the method ranks: s^2, or the scores it derives from s^2. */
	double[] scores(double[] sumOfSquares) {
		return switch (this.method) {
			case WINA -> {
				double[] scores = new double[sumOfSquares.length];
				for (int j = 0; j < scores.length; j++) {
					scores[j] = sumOfSquares[j] * this.downNormsSquared[j];
				}
				yield scores;
			}
			case GLASS -> this.prior.blend(this.layer, sumOfSquares);
			default -> sumOfSquares;
		};
	}

	/** Whether the prompt's statistic decides the selection (it is recorded). */
	boolean usesPrompt() {
		return this.method.usesPrompt();
	}

	/** Whether generated tokens join the statistic before selection ({@code delayed}). */
	boolean delaysSelection() {
		return this.method.delaysSelection();
	}

	/**
	 * A delayed selection's statistic: the prompt's s^2 plus the generated tokens'
	 * weighted to hold the method's {@link SelectionMethod#replyShare} of the sum, or by
	 * 1 where that would weigh them less than their count; the prompt's alone for a share
	 * of 0 ({@code dense_start}).
	 * @param prompt the prompt's s^2
	 * @param reply the generated tokens' s^2, or null when none ran
	 */
	double[] withReply(double[] prompt, double[] reply) {
		double share = this.method.replyShare();
		if (reply == null || share == 0) {
			return prompt;
		}
		double promptMass = 0;
		double replyMass = 0;
		for (int j = 0; j < prompt.length; j++) {
			promptMass += prompt[j];
			replyMass += reply[j];
		}
		double weight = (replyMass > 0) ? Math.max(1.0, share / (1 - share) * promptMass / replyMass) : 1.0;
		double[] blended = new double[prompt.length];
		for (int j = 0; j < prompt.length; j++) {
			blended[j] = prompt[j] + weight * reply[j];
		}
		return blended;
	}

	/** A sequence's experts E over this block's dense weights, not gathered yet. */
	LayerExperts experts(int[] indices) {
		return new LayerExperts(this.dense, indices);
	}

	/** ||W_down[:, j]||^2 for every neuron j, in float64. */
	private static double[] downNormsSquared(Weights dense, NDManager manager) {
		try (NDManager scratch = manager.newSubManager()) {
			// [D, F]
			NDArray down = dense.down().toType(ai.djl.ndarray.types.DataType.FLOAT64, false);
			down.attach(scratch);
			NDArray norms = down.square().sum(new int[] { 0 }); // [F]
			norms.attach(scratch);
			return norms.toDoubleArray();
		}
	}

	/**
	 * The static baseline: the k neurons with the largest ||W_gate row|| * ||W_up row||
	 * (||W_up row|| for a non-gated block).
	 */
	private static int[] magnitudeIndices(Weights dense, int k, NDManager manager) {
		double[] scores;
		try (NDManager scratch = manager.newSubManager()) {
			NDArray gateUp = dense.gateUp().toType(ai.djl.ndarray.types.DataType.FLOAT64, false);
			gateUp.attach(scratch);
			NDArray norms = gateUp.norm(new int[] { 1 }, false); // [2F] or [F]
			norms.attach(scratch);
			int f = dense.intermediateSize();
			NDArray product = dense.gated()
					? norms.get(new NDIndex().addSliceDim(0, f)).mul(norms.get(new NDIndex().addSliceDim(f, 2L * f)))
					: norms;
			product.attach(scratch);
			scores = product.toDoubleArray(); // [F]
		}
		return ExpertSelector.select(scores, k, SelectionMethod.MAGNITUDE, null);
	}

}

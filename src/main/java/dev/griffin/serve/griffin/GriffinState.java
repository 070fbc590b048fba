package dev.griffin.serve.griffin;

import java.util.SplittableRandom;

import ai.djl.ndarray.NDManager;

import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.Kernels;

/**
 * One sequence's GRIFFIN state in one layer: the prompt statistic s^2 while the prompt
 * runs, then the selected experts, whose weights the sequence gathers into memory of its
 * own when a product first needs them. A prompt cache entry keeps only the indices
 * ({@link #share}); a sequence that starts from it gets its own {@link LayerExperts}.
 */
public final class GriffinState implements FeedForward.State {

	private final GriffinFeedForward block;

	private final SplittableRandom random;

	private double[] sumOfSquares;

	private LayerExperts experts;

	GriffinState(GriffinFeedForward block, SplittableRandom random) {
		this.block = block;
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

	/** The selected experts; null until the prompt ends. */
	public LayerExperts experts() {
		return this.experts;
	}

	@Override
	public LayerExperts generationWeights() {
		if (this.experts == null) {
			throw new IllegalStateException("generation before the prompt selected experts");
		}
		return this.experts;
	}

	/** Starts from the experts another sequence's prompt selected. */
	@Override
	public void reuse(FeedForward.Prepared prepared) {
		if (this.experts != null) {
			throw new IllegalStateException("experts are already selected");
		}
		if (!(prepared instanceof LayerExperts.Choice choice)) {
			throw new IllegalArgumentException("a cached prompt without experts for a GRIFFIN layer");
		}
		this.experts = this.block.experts(choice.indices());
	}

	/**
	 * The selected experts for a prompt cache entry: their indices, which the entry can
	 * hand to later sequences; this state keeps its own experts.
	 */
	@Override
	public LayerExperts.Choice share(NDManager owner) {
		if (this.experts == null) {
			throw new IllegalStateException("no experts selected to share");
		}
		return new LayerExperts.Choice(this.experts.indices());
	}

	@Override
	public void finishPrompt(NDManager manager) {
		if (this.experts != null) {
			return;
		}
		this.experts = this.block.selectExperts(this.sumOfSquares, this.random);
	}

	@Override
	public void gatherWeights(Kernels kernels) {
		if (this.experts != null) {
			this.experts.prepare(kernels);
		}
	}

	@Override
	public void close() {
		if (this.experts != null) {
			this.experts.close();
		}
		this.experts = null;
	}

}

package dev.griffin.serve.griffin;

import java.util.SplittableRandom;

import ai.djl.ndarray.NDManager;

import dev.griffin.serve.model.FeedForward;

/**
 * One sequence's GRIFFIN state in one layer: the prompt statistic s^2 while the prompt
 * runs, then the selected experts with their gathered weights, which the sequence owns
 * (or reads from a prompt cache entry, which owns them).
 */
public final class GriffinState implements FeedForward.State {

	private final GriffinFeedForward block;

	private final SplittableRandom random;

	private double[] sumOfSquares;

	private LayerExperts experts;

	private boolean ownsExperts;

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

	/** Installs experts another sequence's prompt selected; shared, not owned. */
	@Override
	public void reuse(FeedForward.Prepared prepared) {
		if (this.experts != null) {
			throw new IllegalStateException("experts are already selected");
		}
		if (!(prepared instanceof LayerExperts shared)) {
			throw new IllegalArgumentException("a cached prompt without experts for a GRIFFIN layer");
		}
		this.experts = shared;
		this.ownsExperts = false;
	}

	/**
	 * Hands this sequence's experts to a prompt cache entry: they move to {@code owner}
	 * and the entry, not this state, frees them.
	 */
	@Override
	public LayerExperts share(NDManager owner) {
		if (this.experts == null || !this.ownsExperts) {
			throw new IllegalStateException("no experts of this sequence's own to share");
		}
		this.experts.attach(owner);
		this.ownsExperts = false;
		return this.experts;
	}

	@Override
	public void finishPrompt(NDManager manager) {
		if (this.experts != null) {
			return;
		}
		this.experts = this.block.selectExperts(this.sumOfSquares, this.random, manager);
		this.ownsExperts = true;
	}

	@Override
	public void close() {
		if (this.ownsExperts) {
			this.experts.close();
		}
		this.experts = null;
	}

}

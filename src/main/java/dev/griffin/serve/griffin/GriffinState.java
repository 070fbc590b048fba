package dev.griffin.serve.griffin;

import java.util.SplittableRandom;

import ai.djl.ndarray.NDManager;

import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.Kernels;

/**
 * One sequence's GRIFFIN state in one layer: the prompt statistic s^2 while the prompt
 * runs (for {@code delayed}, the first generated tokens' too, kept apart), then the
 * selected experts, whose weights the sequence gathers into memory of its own when a
 * product first needs them. A prompt cache entry keeps only the indices ({@link #share}),
 * or for {@code delayed} the prompt's statistic; a sequence that starts from it gets its
 * own {@link LayerExperts}.
 */
public final class GriffinState implements FeedForward.State {

	private final GriffinFeedForward block;

	private final SplittableRandom random;

	private double[] sumOfSquares;

	private LayerExperts experts;

	/** {@code delayed}: the prompt has ended and the generated tokens' statistic runs. */
	private boolean promptEnded;

	/** {@code delayed}: the generated tokens' s^2. */
	private double[] replySumOfSquares;

	/** {@code delayed}: generated tokens recorded so far. */
	private int recorded;

	GriffinState(GriffinFeedForward block, SplittableRandom random) {
		this.block = block;
		this.random = random;
	}

	void accumulate(double[] squares) {
		if (this.promptEnded) {
			this.replySumOfSquares = add(this.replySumOfSquares, squares);
		}
		else {
			this.sumOfSquares = add(this.sumOfSquares, squares);
		}
	}

	private static double[] add(double[] sum, double[] squares) {
		if (sum == null) {
			return squares;
		}
		for (int j = 0; j < squares.length; j++) {
			sum[j] += squares[j];
		}
		return sum;
	}

	/** A copy of the prompt's s^2 so far, or null before any prompt token. */
	double[] promptStatistic() {
		return (this.sumOfSquares == null) ? null : this.sumOfSquares.clone();
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

	/**
	 * Starts from the experts another sequence's prompt selected, or for {@code delayed}
	 * from its prompt's statistic.
	 */
	@Override
	public void reuse(FeedForward.Prepared prepared) {
		if (this.experts != null || this.promptEnded) {
			throw new IllegalStateException("the prompt phase has already ended");
		}
		if (this.block.delaysSelection()) {
			if (!(prepared instanceof PromptStatistic statistic)) {
				throw new IllegalArgumentException("a cached prompt without its statistic for a delayed GRIFFIN layer");
			}
			this.sumOfSquares = statistic.sumOfSquares().clone();
			this.promptEnded = true;
			return;
		}
		if (!(prepared instanceof LayerExperts.Choice choice)) {
			throw new IllegalArgumentException("a cached prompt without experts for a GRIFFIN layer");
		}
		this.experts = this.block.experts(choice.indices());
	}

	/**
	 * What a prompt cache entry keeps for later sequences: the selected experts' indices,
	 * or for {@code delayed} (which selects after the prompt) the prompt's statistic;
	 * this state keeps its own.
	 */
	@Override
	public FeedForward.Prepared share(NDManager owner) {
		if (this.block.delaysSelection()) {
			if (!this.promptEnded || this.recorded > 0) {
				throw new IllegalStateException(
						"a delayed selection shares the prompt's statistic only before the first generated token");
			}
			return new PromptStatistic(this.sumOfSquares.clone());
		}
		if (this.experts == null) {
			throw new IllegalStateException("no experts selected to share");
		}
		return new LayerExperts.Choice(this.experts.indices());
	}

	@Override
	public boolean recordsPrompt() {
		return this.block.usesPrompt();
	}

	@Override
	public FeedForward.Prepared promptSoFar() {
		if (this.experts != null || this.promptEnded) {
			throw new IllegalStateException("the prompt phase has already ended");
		}
		if (!this.block.usesPrompt()) {
			return null;
		}
		if (this.sumOfSquares == null) {
			throw new IllegalStateException("no prompt token has run");
		}
		return new PromptStatistic(this.sumOfSquares.clone());
	}

	@Override
	public void resumePrompt(FeedForward.Prepared prefix) {
		if (this.experts != null || this.promptEnded || this.sumOfSquares != null) {
			throw new IllegalStateException("a prompt resumes from a prefix only before its first token");
		}
		if (!this.block.usesPrompt()) {
			FeedForward.State.super.resumePrompt(prefix);
			return;
		}
		if (!(prefix instanceof PromptStatistic statistic)
				|| statistic.sumOfSquares().length != this.block.weights().intermediateSize()) {
			throw new IllegalArgumentException("a prompt prefix without this layer's statistic");
		}
		this.sumOfSquares = statistic.sumOfSquares().clone();
	}

	@Override
	public void finishPrompt(NDManager manager) {
		if (this.experts != null || this.promptEnded) {
			return;
		}
		if (this.block.delaysSelection()) {
			if (this.sumOfSquares == null) {
				throw new IllegalStateException("no prompt statistic: the prompt phase never ran");
			}
			this.promptEnded = true;
			return;
		}
		this.experts = this.block.selectExperts(this.sumOfSquares, this.random);
	}

	@Override
	public boolean recordsGeneration() {
		return this.promptEnded && this.experts == null;
	}

	@Override
	public void recordGenerated(double[] sumOfSquares) {
		if (!recordsGeneration()) {
			throw new IllegalStateException("no delayed selection is waiting for generated tokens");
		}
		if (sumOfSquares.length != this.block.weights().intermediateSize()) {
			throw new IllegalArgumentException("a statistic of %d neurons for a block of %d"
				.formatted(sumOfSquares.length, this.block.weights().intermediateSize()));
		}
		accumulate(sumOfSquares);
	}

	@Override
	public void generatedTokenRecorded(NDManager manager) {
		if (!recordsGeneration()) {
			throw new IllegalStateException("no delayed selection is waiting for generated tokens");
		}
		this.recorded++;
		if (this.recorded >= GriffinFeedForward.DELAY_TOKENS) {
			this.experts = this.block.selectExperts(this.block.withReply(this.sumOfSquares, this.replySumOfSquares),
					this.random);
		}
	}

	/**
	 * {@code delayed}'s prompt cache entry: the prompt's s^2, which selection waits on.
	 */
	record PromptStatistic(double[] sumOfSquares) implements FeedForward.Prepared {

		@Override
		public long bytes() {
			return (long) Double.BYTES * this.sumOfSquares.length;
		}

		@Override
		public void close() {
		}

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

package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;

/** One pre-norm transformer block. */
public final class DecoderLayer {

	private final RmsNorm attentionNorm;

	private final Attention attention;

	private final RmsNorm ffnNorm;

	private final FeedForward feedForward;

	public DecoderLayer(RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm, FeedForward feedForward) {
		this.attentionNorm = attentionNorm;
		this.attention = attention;
		this.ffnNorm = ffnNorm;
		this.feedForward = feedForward;
	}

	public FeedForward feedForward() {
		return this.feedForward;
	}

	/** Same block, another feed-forward (the GRIFFIN transform). */
	public DecoderLayer withFeedForward(FeedForward replacement) {
		return new DecoderLayer(this.attentionNorm, this.attention, this.ffnNorm, replacement);
	}

	/** x: [T, D] -> [T, D]. */
	public NDArray forward(NDArray x, Positions positions, KvCache cache, FeedForward.Phase phase,
			FeedForward.State state, Kernels kernels) {
		NDArray h = x.add(this.attention.forward(this.attentionNorm.forward(x), positions, cache, kernels));
		return h.add(this.feedForward.forward(this.ffnNorm.forward(h), phase, state, kernels));
	}

}

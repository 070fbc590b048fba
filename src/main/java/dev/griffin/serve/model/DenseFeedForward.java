package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;

/**
 * The model's own feed-forward block, every neuron:
 * {@code (act(x W_gate^T) * (x W_up^T)) W_down^T}.
 */
public final class DenseFeedForward implements FeedForward {

	private final Weights weights;

	public DenseFeedForward(Weights weights) {
		this.weights = weights;
	}

	@Override
	public boolean fusable() {
		return true;
	}

	@Override
	public boolean promptFusable() {
		return true;
	}

	@Override
	public Weights weights() {
		return this.weights;
	}

	@Override
	public NDArray forward(NDArray x, Phase phase, State state, Kernels kernels) {
		return kernels.feedForward(x, this.weights); // [T, D]
	}

}

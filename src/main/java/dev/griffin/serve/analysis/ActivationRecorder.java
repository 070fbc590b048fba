package dev.griffin.serve.analysis;

import ai.djl.ndarray.NDArray;

import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.Kernels;

/**
 * A dense feed-forward block that shows each pass's activations
 * {@code Z = act(x W_gate^T) * (x W_up^T)} to {@link #record} before computing its output
 * as usual: what the analyses measure a model's neurons with.
 */
abstract class ActivationRecorder implements FeedForward {

	private final Weights weights;

	ActivationRecorder(Weights weights) {
		this.weights = weights;
	}

	/** Sees one pass's activations, [T, F]. */
	abstract void record(NDArray z, Phase phase);

	@Override
	public Weights weights() {
		return this.weights;
	}

	@Override
	public NDArray forward(NDArray x, Phase phase, State state, Kernels kernels) {
		NDArray z = kernels.activations(x, this.weights); // [T, F]
		record(z, phase);
		return kernels.output(z, this.weights); // [T, D]
	}

}

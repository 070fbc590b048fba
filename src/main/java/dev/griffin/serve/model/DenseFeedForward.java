package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Linear;

/**
 * The model's own feed-forward block, every neuron:
 * {@code (silu(x W_gate^T) * (x W_up^T)) W_down^T}.
 */
public final class DenseFeedForward implements FeedForward {

	private final Weights weights;

	public DenseFeedForward(Weights weights) {
		this.weights = weights;
	}

	@Override
	public Weights weights() {
		return this.weights;
	}

	@Override
	public NDArray forward(NDArray x, Phase phase, State state) {
		// [T, D]
		return output(activations(x, this.weights.gateUp()), this.weights.down());
	}

	/**
	 * Z = silu(x W_gate^T) * (x W_up^T) for stacked gate/up weights [2K, D]: x [T, D] ->
	 * [T, K].
	 */
	public static NDArray activations(NDArray x, NDArray gateUp) {
		NDArray projected = Linear.linear(x, gateUp).singletonOrThrow(); // [T, 2K]
		NDList halves = projected.split(2, 1); // 2 x [T, K]
		NDArray gate = halves.get(0);
		return gate.mul(Activation.sigmoid(gate)).mul(halves.get(1)); // [T, K]
	}

	/**
	 * The down projection {@code Z W_down^T} for W_down stored [D, K] (see
	 * {@link FeedForward.Weights} for why that layout): Z [T, K] -> [T, D].
	 */
	public static NDArray output(NDArray z, NDArray down) {
		return Linear.linear(z, down).singletonOrThrow();
	}

}

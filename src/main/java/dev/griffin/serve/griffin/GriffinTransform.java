package dev.griffin.serve.griffin;

import dev.griffin.serve.model.CausalLm;

/**
 * Turns a finished dense model into a GRIFFIN model (Dong et al. 2024): every
 * feed-forward block becomes a {@link GriffinFeedForward} over the same weights. The
 * dense model stays usable beside it, so every comparison is one flag away.
 */
public final class GriffinTransform {

	private GriffinTransform() {
	}

	/** A GRIFFIN model whose method needs no neuron prior. */
	public static CausalLm apply(CausalLm dense, DensitySchedule schedule, SelectionMethod method) {
		return apply(dense, schedule, method, null);
	}

	/**
	 * A GRIFFIN model.
	 * @param prior the model's neuron prior: required by {@code glass}, unused otherwise
	 */
	public static CausalLm apply(CausalLm dense, DensitySchedule schedule, SelectionMethod method, NeuronPrior prior) {
		int layers = dense.config().numberOfLayers();
		if (schedule.layers() != layers) {
			throw new IllegalArgumentException(
					"density schedule has %d layers, the model %d".formatted(schedule.layers(), layers));
		}
		int f = dense.config().intermediateSize();
		if (method.usesPrior()) {
			if (prior == null) {
				throw new IllegalArgumentException(
						"the %s method needs the model's neuron prior, which is not measured: run the prior command"
							.formatted(method.wireName()));
			}
			prior.check(layers, f);
		}
		return dense.withFeedForwards((layer, feedForward) -> new GriffinFeedForward(feedForward.weights(),
				schedule.experts(layer, f), method, dense.manager(), method.usesPrior() ? prior : null, layer));
	}

}

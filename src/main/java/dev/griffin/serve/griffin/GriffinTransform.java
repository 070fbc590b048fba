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
	 * @param schedule each layer's density; for {@code layerwise}, the prior's
	 * {@link NeuronPrior#schedule spread} of the mean density, which {@link #schedule}
	 * gives
	 * @param prior the model's neuron prior: required by the methods that use it, unused
	 * otherwise
	 */
	public static CausalLm apply(CausalLm dense, DensitySchedule schedule, SelectionMethod method, NeuronPrior prior) {
		int layers = dense.config().numberOfLayers();
		if (schedule.layers() != layers) {
			throw new IllegalArgumentException(
					"density schedule has %d layers, the model %d".formatted(schedule.layers(), layers));
		}
		int f = dense.config().intermediateSize();
		if (method.usesPrior()) {
			requirePrior(method, prior);
			prior.check(layers, f);
		}
		return dense.withFeedForwards((layer, feedForward) -> new GriffinFeedForward(feedForward.weights(),
				schedule.experts(layer, f), method, dense.manager(), method.blendsPrior() ? prior : null, layer));
	}

	/**
	 * The densities a method runs at for a mean {@code density}: the prior's spread for
	 * {@code layerwise}, the same in every layer otherwise.
	 */
	public static DensitySchedule schedule(double density, SelectionMethod method, NeuronPrior prior, int layers) {
		if (!method.spreadsDensity()) {
			return DensitySchedule.uniform(density, layers);
		}
		requirePrior(method, prior);
		DensitySchedule schedule = prior.schedule(density);
		if (schedule.layers() != layers) {
			throw new IllegalArgumentException("the neuron prior is for %d layers, the model has %d: measure it again"
				.formatted(schedule.layers(), layers));
		}
		return schedule;
	}

	private static void requirePrior(SelectionMethod method, NeuronPrior prior) {
		if (prior == null) {
			throw new IllegalArgumentException(
					"the %s method needs the model's neuron prior, which is not measured: run the prior command"
						.formatted(method.wireName()));
		}
	}

}

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

	public static CausalLm apply(CausalLm dense, DensitySchedule schedule, SelectionMethod method) {
		int layers = dense.config().numberOfLayers();
		if (schedule.layers() != layers) {
			throw new IllegalArgumentException(
					"density schedule has %d layers, the model %d".formatted(schedule.layers(), layers));
		}
		int f = dense.config().intermediateSize();
		return dense.withFeedForwards((layer, feedForward) -> new GriffinFeedForward(feedForward.weights(),
				schedule.experts(layer, f), method, dense.manager()));
	}

}

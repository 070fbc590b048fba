package dev.griffin.serve.griffin;

/**
 * What a request asks of GRIFFIN: density 1 with {@code topk} is the dense model.
 *
 * @param density fraction of feed-forward neurons generation keeps, in [0, 1] (see
 * {@link DensitySchedule#checkDensity})
 * @param method how the experts are selected
 */
public record GriffinSettings(double density, SelectionMethod method) {

	public GriffinSettings {
		DensitySchedule.checkDensity(density);
		if (method == null) {
			throw new IllegalArgumentException("a selection method is required");
		}
	}

	public boolean isDense() {
		return this.density == 1.0 && this.method == SelectionMethod.TOPK;
	}

	/** Whether selection draws random numbers (its result then depends on the seed). */
	public boolean isRandomized() {
		return this.method == SelectionMethod.SAMPLE || this.method == SelectionMethod.TOPK_SAMPLE
				|| this.method == SelectionMethod.RANDOM;
	}

}

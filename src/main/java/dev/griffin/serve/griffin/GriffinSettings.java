package dev.griffin.serve.griffin;

/**
 * What a request asks of GRIFFIN: density 1 is the dense model, whatever the method
 * (every method keeps every neuron there), so it runs and is reported as dense.
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
		return this.density == 1.0;
	}

	/**
	 * Whether selection draws random numbers (its result then depends on the seed); the
	 * dense model selects nothing.
	 */
	public boolean isRandomized() {
		return !isDense() && (this.method == SelectionMethod.SAMPLE || this.method == SelectionMethod.TOPK_SAMPLE
				|| this.method == SelectionMethod.RANDOM);
	}

}

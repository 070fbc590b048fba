package dev.griffin.serve.griffin;

import java.util.Arrays;

/**
 * The fraction of feed-forward neurons each layer keeps during generation; layer i keeps
 * k_i = floor(F * density_i) experts. Density 1 is the dense model, 0 turns the block
 * off.
 *
 * @param densities one per layer, each in [0, 1]
 */
public record DensitySchedule(double[] densities) {

	public DensitySchedule {
		if (densities == null || densities.length == 0) {
			throw new IllegalArgumentException("a density schedule needs at least one layer");
		}
		for (double density : densities) {
			if (!(density >= 0 && density <= 1)) {
				throw new IllegalArgumentException("density must be in [0, 1], got " + density);
			}
		}
		densities = densities.clone();
	}

	public static DensitySchedule uniform(double density, int layers) {
		double[] densities = new double[layers];
		Arrays.fill(densities, density);
		return new DensitySchedule(densities);
	}

	/**
	 * Parses one density for every layer ("0.5") or one per layer ("0.75,0.5,...").
	 */
	public static DensitySchedule parse(String text, int layers) {
		String[] parts = text.split(",");
		try {
			if (parts.length == 1) {
				return uniform(Double.parseDouble(parts[0].trim()), layers);
			}
			if (parts.length != layers) {
				throw new IllegalArgumentException(
						"a per-layer density schedule needs %d values, got %d".formatted(layers, parts.length));
			}
			return new DensitySchedule(Arrays.stream(parts).mapToDouble((p) -> Double.parseDouble(p.trim())).toArray());
		}
		catch (NumberFormatException ex) {
			throw new IllegalArgumentException("density '" + text + "' is not a number or a comma-separated list");
		}
	}

	public int layers() {
		return this.densities.length;
	}

	public double density(int layer) {
		return this.densities[layer];
	}

	/** k = floor(F * density) for a layer. */
	public int experts(int layer, int intermediateSize) {
		return (int) Math.floor(intermediateSize * this.densities[layer]);
	}

	/** The mean density, what a response reports for a uniform schedule. */
	public double mean() {
		return Arrays.stream(this.densities).average().orElse(1);
	}

	@Override
	public double[] densities() {
		return this.densities.clone();
	}

	@Override
	public boolean equals(Object other) {
		return other instanceof DensitySchedule schedule && Arrays.equals(this.densities, schedule.densities);
	}

	@Override
	public int hashCode() {
		return Arrays.hashCode(this.densities);
	}

	@Override
	public String toString() {
		return Arrays.toString(this.densities);
	}

}

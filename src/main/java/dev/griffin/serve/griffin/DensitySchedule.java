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
			checkDensity(density);
		}
		densities = densities.clone();
	}

	/**
	 * The one rule for a density: a finite number in [0, 1].
	 * @throws IllegalArgumentException otherwise
	 */
	public static void checkDensity(double density) {
		if (!(density >= 0 && density <= 1)) {
			throw new IllegalArgumentException("density must be in [0, 1], got " + density);
		}
	}

	public static DensitySchedule uniform(double density, int layers) {
		double[] densities = new double[layers];
		Arrays.fill(densities, density);
		return new DensitySchedule(densities);
	}

	public int layers() {
		return this.densities.length;
	}

	/** k = floor(F * density) for a layer. */
	public int experts(int layer, int intermediateSize) {
		return (int) Math.floor(intermediateSize * this.densities[layer]);
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

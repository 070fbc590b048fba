package dev.griffin.serve.griffin;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * A model's neuron prior, what the {@code glass} method blends with a prompt's statistic:
 * per layer, g_j, neuron j's mean share of a generated token's normalised activations
 * ({@code Zbar_t,j^2}, which sums to 1 over j for every token), measured once per model
 * on its own replies to a fixed set of instructions; and tau, the prior's weight in
 * tokens. A prompt of T tokens contributes s^2, which sums to T, so {@code s^2 + tau * g}
 * weighs the prompt by T / (T + tau) and the prior by tau / (T + tau): a short prompt
 * leans on the prior, a long one on itself.
 *
 * <p>
 * The file also holds each layer's measured sensitivity ({@link LayerSensitivity}), from
 * which {@link #schedule} spreads a mean density over the layers for the
 * {@code layerwise} method.
 *
 * @param tau the prior's weight, in tokens
 * @param tokens how many generated tokens the prior was measured on
 * @param layers per layer, g over the F neurons
 * @param sensitivity per layer and density, how far the model's replies move when that
 * layer alone runs GRIFFIN; null in a file measured before it was
 */
public record NeuronPrior(double tau, int tokens, double[][] layers, LayerSensitivity sensitivity) {

	/**
	 * The steps in which {@link #schedule} hands out density: 1/64 of a layer's neurons.
	 */
	static final int STEPS = 64;

	/** The file's format name; a file of another format is refused. */
	public static final String FORMAT = "griffin-neuron-prior/1";

	private static final ObjectMapper JSON = new ObjectMapper();

	public NeuronPrior {
		if (!(tau >= 0) || Double.isInfinite(tau)) {
			throw new IllegalArgumentException("tau must be a finite number >= 0, got " + tau);
		}
		if (layers.length == 0 || layers[0].length == 0) {
			throw new IllegalArgumentException("a neuron prior needs at least one layer of neurons");
		}
		for (double[] layer : layers) {
			if (layer.length != layers[0].length) {
				throw new IllegalArgumentException("every layer of a neuron prior needs the same number of neurons");
			}
			for (double g : layer) {
				if (!(g >= 0) || Double.isInfinite(g)) {
					throw new IllegalArgumentException("a neuron prior holds finite values >= 0, got " + g);
				}
			}
		}
		if (sensitivity != null && sensitivity.kl().length != layers.length) {
			throw new IllegalArgumentException("the layer sensitivity has %d layers, the prior %d"
				.formatted(sensitivity.kl().length, layers.length));
		}
	}

	/** A prior without layer sensitivities. */
	public NeuronPrior(double tau, int tokens, double[][] layers) {
		this(tau, tokens, layers, null);
	}

	/**
	 * How much each layer's GRIFFIN costs: with every other layer dense and this one
	 * running {@code topk} at a density, the mean per-token KL(full || that model) on the
	 * full model's own greedy replies, teacher-forced, in nats. Density 1 costs nothing.
	 *
	 * @param densities the densities measured, rising, in (0, 1)
	 * @param kl per layer, the KL at each density
	 */
	public record LayerSensitivity(double[] densities, double[][] kl) {

		public LayerSensitivity {
			if (densities.length == 0) {
				throw new IllegalArgumentException("a layer sensitivity needs at least one density");
			}
			for (int i = 0; i < densities.length; i++) {
				if (!(densities[i] > 0 && densities[i] < 1) || (i > 0 && densities[i] <= densities[i - 1])) {
					throw new IllegalArgumentException("the densities of a layer sensitivity rise within (0, 1), got "
							+ Arrays.toString(densities));
				}
			}
			for (double[] layer : kl) {
				if (layer.length != densities.length) {
					throw new IllegalArgumentException("a layer's sensitivity needs one KL per density");
				}
				for (double value : layer) {
					if (!(value >= 0) || Double.isInfinite(value)) {
						throw new IllegalArgumentException("a KL is a finite number >= 0, got " + value);
					}
				}
			}
			densities = densities.clone();
		}

		/**
		 * A layer's cost as a function of its density: the measured points and (1, 0),
		 * joined by the lower convex hull, so that a step of density never gains more
		 * than the one before it.
		 * @return the hull's points, densities in [0] and KL in [1], rising density
		 */
		double[][] hull(int layer) {
			int n = this.densities.length + 1;
			double[] x = Arrays.copyOf(this.densities, n);
			double[] y = Arrays.copyOf(this.kl[layer], n);
			x[n - 1] = 1.0;
			y[n - 1] = 0.0;
			int[] keep = new int[n];
			int size = 0;
			for (int i = 0; i < n; i++) {
				while (size >= 2 && cross(x, y, keep[size - 2], keep[size - 1], i) <= 0) {
					size--;
				}
				keep[size++] = i;
			}
			double[][] points = new double[2][size];
			for (int i = 0; i < size; i++) {
				points[0][i] = x[keep[i]];
				points[1][i] = y[keep[i]];
			}
			return points;
		}

		/** > 0 when a, b, c turn counter-clockwise (b lies below the chord a-c). */
		private static double cross(double[] x, double[] y, int a, int b, int c) {
			return (x[b] - x[a]) * (y[c] - y[a]) - (y[b] - y[a]) * (x[c] - x[a]);
		}

		/**
		 * The KL of a layer at a density on its hull, for densities from the first
		 * measured.
		 */
		static double at(double[][] hull, double density) {
			double[] x = hull[0];
			double[] y = hull[1];
			if (density <= x[0]) {
				return y[0];
			}
			for (int i = 1; i < x.length; i++) {
				if (density <= x[i]) {
					return y[i - 1] + (y[i] - y[i - 1]) * (density - x[i - 1]) / (x[i] - x[i - 1]);
				}
			}
			return 0.0;
		}

	}

	/**
	 * The {@code layerwise} method's densities: {@code density} on average over the
	 * layers, spread where the measured sensitivities say it lowers the summed KL most.
	 * Every layer starts at the lowest density measured; each 1/64 of a layer's neurons
	 * then goes to the layer whose KL it lowers most (ties to the lower layer) until the
	 * mean is reached, and a fraction of a step left over goes to the next layer in line.
	 * On the convex hulls of the measured costs this greedy spread is the least summed
	 * KL.
	 * @throws IllegalStateException when the prior has no sensitivities
	 * @throws IllegalArgumentException for a density below the lowest one measured
	 */
	public DensitySchedule schedule(double density) {
		DensitySchedule.checkDensity(density);
		if (this.sensitivity == null) {
			throw new IllegalStateException("the neuron prior has no layer sensitivities (it predates them): "
					+ "measure it again with the prior command");
		}
		double lowest = this.sensitivity.densities()[0];
		if (density < lowest) {
			throw new IllegalArgumentException(
					"layerwise runs at densities from %s to 1, where the layers' sensitivities are measured; got %s"
						.formatted(lowest, density));
		}
		int layerCount = this.layers.length;
		double[][][] hulls = new double[layerCount][][];
		double[] densities = new double[layerCount];
		for (int layer = 0; layer < layerCount; layer++) {
			hulls[layer] = this.sensitivity.hull(layer);
			densities[layer] = lowest;
		}
		double step = 1.0 / STEPS;
		double budget = (density - lowest) * layerCount;
		while (budget > 1e-12) {
			double amount = Math.min(step, budget);
			int best = -1;
			double bestGain = Double.NEGATIVE_INFINITY;
			for (int layer = 0; layer < layerCount; layer++) {
				if (densities[layer] + amount <= 1.0 + 1e-12) {
					double gain = LayerSensitivity.at(hulls[layer], densities[layer])
							- LayerSensitivity.at(hulls[layer], densities[layer] + amount);
					if (gain > bestGain) {
						best = layer;
						bestGain = gain;
					}
				}
			}
			densities[best] = Math.min(1.0, densities[best] + amount);
			budget -= amount;
		}
		return new DensitySchedule(densities);
	}

	/**
	 * The prior file a model loads with.
	 * @param setting null or blank: {@link #pathFor the file beside the model} if there
	 * is one; {@code none}: no prior; otherwise the path of a prior file, which must
	 * exist
	 * @return the file, or null for no prior
	 */
	public static Path locate(String setting, Path model) {
		if (setting == null || setting.isBlank()) {
			Path beside = pathFor(model);
			return Files.isRegularFile(beside) ? beside : null;
		}
		if (setting.strip().equalsIgnoreCase("none")) {
			return null;
		}
		Path file = Path.of(setting.strip());
		if (!Files.isRegularFile(file)) {
			throw new IllegalArgumentException("no neuron prior at " + file);
		}
		return file;
	}

	/** Where the prior of the model at {@code model} (a file or a directory) is kept. */
	public static Path pathFor(Path model) {
		return Files.isDirectory(model) ? model.resolve("griffin-prior.json")
				: model.resolveSibling(model.getFileName() + ".griffin-prior.json");
	}

	/** The scores {@code glass} ranks: {@code s^2 + tau * g} for one layer. */
	public double[] blend(int layer, double[] sumOfSquares) {
		double[] g = this.layers[layer];
		if (sumOfSquares.length != g.length) {
			throw new IllegalArgumentException(
					"the prior has %d neurons per layer, the statistic %d".formatted(g.length, sumOfSquares.length));
		}
		double[] scores = new double[g.length];
		for (int j = 0; j < g.length; j++) {
			scores[j] = sumOfSquares[j] + this.tau * g[j];
		}
		return scores;
	}

	/** This prior with another weight. */
	public NeuronPrior withTau(double tau) {
		return new NeuronPrior(tau, this.tokens, this.layers, this.sensitivity);
	}

	/** Fails unless the prior was measured on a model of this shape. */
	public void check(int layerCount, int intermediateSize) {
		if (this.layers.length != layerCount || this.layers[0].length != intermediateSize) {
			throw new IllegalArgumentException(
					"the neuron prior is for %d layers of %d neurons, the model has %d of %d: measure it again with the prior command"
						.formatted(this.layers.length, this.layers[0].length, layerCount, intermediateSize));
		}
	}

	/** Writes the prior as JSON, replacing {@code file} only once it is complete. */
	public void write(Path file) throws IOException {
		Map<String, Object> json = new LinkedHashMap<>();
		json.put("format", FORMAT);
		json.put("tau", this.tau);
		json.put("tokens", this.tokens);
		// float precision: the values are shares estimated from a few thousand tokens
		float[][] values = new float[this.layers.length][];
		for (int i = 0; i < values.length; i++) {
			values[i] = new float[this.layers[i].length];
			for (int j = 0; j < values[i].length; j++) {
				values[i][j] = (float) this.layers[i][j];
			}
		}
		json.put("layers", values);
		if (this.sensitivity != null) {
			Map<String, Object> sensitivity = new LinkedHashMap<>();
			sensitivity.put("densities", this.sensitivity.densities());
			sensitivity.put("kl", this.sensitivity.kl());
			json.put("sensitivity", sensitivity);
		}
		Path partial = file.resolveSibling(file.getFileName() + ".partial");
		JSON.writeValue(partial.toFile(), json);
		Files.move(partial, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
	}

	/** Reads a prior the {@link #write} of this format wrote. */
	public static NeuronPrior read(Path file) throws IOException {
		JsonNode json = JSON.readTree(file.toFile());
		if (json == null || !FORMAT.equals(json.path("format").asText())) {
			throw new IOException("%s is not a neuron prior of format %s".formatted(file, FORMAT));
		}
		if (!json.path("tau").isNumber() || !json.path("tokens").isInt()) {
			throw new IOException(file + ": a neuron prior needs numbers 'tau' and 'tokens' and an array 'layers'");
		}
		double[][] values = numbers(file, json.path("layers"), "layers");
		JsonNode sensitivity = json.path("sensitivity");
		try {
			LayerSensitivity measured = null;
			if (!sensitivity.isMissingNode()) {
				measured = new LayerSensitivity(row(file, sensitivity.path("densities"), "sensitivity.densities"),
						numbers(file, sensitivity.path("kl"), "sensitivity.kl"));
			}
			return new NeuronPrior(json.get("tau").asDouble(), json.get("tokens").asInt(), values, measured);
		}
		catch (IllegalArgumentException ex) {
			throw new IOException(file + ": " + ex.getMessage(), ex);
		}
	}

	/** An array of arrays of numbers, one per layer. */
	private static double[][] numbers(Path file, JsonNode layers, String name) throws IOException {
		if (!layers.isArray()) {
			throw new IOException(file + ": '" + name + "' is not an array");
		}
		double[][] values = new double[layers.size()][];
		for (int i = 0; i < values.length; i++) {
			values[i] = row(file, layers.get(i), name + ", row " + i);
		}
		return values;
	}

	/** An array of numbers. */
	private static double[] row(Path file, JsonNode row, String name) throws IOException {
		if (!row.isArray()) {
			throw new IOException(file + ": " + name + " is not an array");
		}
		double[] values = new double[row.size()];
		for (int j = 0; j < values.length; j++) {
			if (!row.get(j).isNumber()) {
				throw new IOException(file + ": " + name + " holds a value that is not a number");
			}
			values[j] = row.get(j).asDouble();
		}
		return values;
	}

}

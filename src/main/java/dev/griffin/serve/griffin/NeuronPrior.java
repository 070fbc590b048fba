package dev.griffin.serve.griffin;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
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
 * @param tau the prior's weight, in tokens
 * @param tokens how many generated tokens the prior was measured on
 * @param layers per layer, g over the F neurons
 */
public record NeuronPrior(double tau, int tokens, double[][] layers) {

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
		return new NeuronPrior(tau, this.tokens, this.layers);
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
		JsonNode layers = json.path("layers");
		if (!layers.isArray() || !json.path("tau").isNumber() || !json.path("tokens").isInt()) {
			throw new IOException(file + ": a neuron prior needs numbers 'tau' and 'tokens' and an array 'layers'");
		}
		double[][] values = new double[layers.size()][];
		for (int i = 0; i < values.length; i++) {
			JsonNode layer = layers.get(i);
			if (!layer.isArray()) {
				throw new IOException(file + ": layer " + i + " is not an array");
			}
			values[i] = new double[layer.size()];
			for (int j = 0; j < values[i].length; j++) {
				if (!layer.get(j).isNumber()) {
					throw new IOException(file + ": layer " + i + " holds a value that is not a number");
				}
				values[i][j] = layer.get(j).asDouble();
			}
		}
		try {
			return new NeuronPrior(json.get("tau").asDouble(), json.get("tokens").asInt(), values);
		}
		catch (IllegalArgumentException ex) {
			throw new IOException(file + ": " + ex.getMessage(), ex);
		}
	}

}

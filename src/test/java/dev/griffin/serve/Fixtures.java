package dev.griffin.serve;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Golden fixtures produced by tools/reference, and the default model fetched by
 * scripts/fetch-model.
 */
public final class Fixtures {

	public static final String DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf";

	private static final ObjectMapper JSON = new ObjectMapper();

	private Fixtures() {
	}

	public static Path path(String name) {
		try {
			return Paths.get(Fixtures.class.getResource("/fixtures/" + name).toURI());
		}
		catch (URISyntaxException | NullPointerException ex) {
			throw new IllegalStateException("missing test fixture " + name, ex);
		}
	}

	public static JsonNode json(String name) {
		try {
			return JSON.readTree(path(name).toFile());
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
	}

	public static int[] ints(JsonNode array) {
		int[] values = new int[array.size()];
		for (int i = 0; i < values.length; i++) {
			values[i] = array.get(i).asInt();
		}
		return values;
	}

	/**
	 * The default model. Real-model tests fail, never skip, when it is missing: run
	 * scripts/fetch-model.
	 */
	public static Path defaultModel() {
		String dir = System.getProperty("griffin.model.dir",
				System.getProperty("user.home") + "/.cache/griffin-serve/models");
		Path model = Paths.get(dir, DEFAULT_MODEL_FILE);
		if (!Files.exists(model)) {
			throw new IllegalStateException(model + " is missing: run scripts/fetch-model first");
		}
		return model;
	}

}

package dev.griffin.serve;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.tokenizer.Tokenizer;
import dev.griffin.serve.weights.Checkpoint;
import dev.griffin.serve.weights.Checkpoints;
import dev.griffin.serve.weights.ModelBuilder;

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
		Path model = modelDir().resolve(DEFAULT_MODEL_FILE);
		if (!Files.exists(model)) {
			throw new IllegalStateException(model + " is missing: run scripts/fetch-model first");
		}
		return model;
	}

	/** The model cache the tests share with scripts/fetch-model. */
	public static Path modelDir() {
		return Paths.get(System.getProperty("griffin.model.dir",
				System.getProperty("user.home") + "/.cache/griffin-serve/models"));
	}

	/**
	 * A named model (scripts/fetch-model NAME), fetched into the model cache if it is not
	 * there yet: minutes the first time, instant after.
	 */
	public static Path namedModel(String name) {
		try {
			ProcessBuilder builder = new ProcessBuilder("scripts/fetch-model", name)
				.redirectError(ProcessBuilder.Redirect.INHERIT);
			builder.environment().put("GRIFFIN_MODEL_DIR", modelDir().toString());
			Process process = builder.start();
			String out = new String(process.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
			if (!process.waitFor(10, java.util.concurrent.TimeUnit.MINUTES) || process.exitValue() != 0) {
				throw new IllegalStateException("scripts/fetch-model " + name + " failed");
			}
			return Paths.get(out.strip());
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
		catch (InterruptedException ex) {
			Thread.currentThread().interrupt();
			throw new IllegalStateException(ex);
		}
	}

	/** A tiny fixture checkpoint (random weights, 256-token vocabulary) as a model. */
	public static CausalLm tinyModel(String name, ModelOptions options, NDManager owner) {
		try (Checkpoint checkpoint = Checkpoints.open(path(name))) {
			return ModelBuilder.build(checkpoint, options, owner, (layers) -> {
			});
		}
	}

	/**
	 * A byte-level tokenizer of 256 tokens, one per byte (no merges), for the tiny
	 * models: written as a Hugging Face tokenizer.json into {@code directory}.
	 */
	public static Tokenizer byteTokenizer(Path directory) {
		ObjectNode root = JSON.createObjectNode();
		root.put("version", "1.0");
		root.putNull("truncation");
		root.putNull("padding");
		root.putArray("added_tokens");
		root.putNull("normalizer");
		ObjectNode pre = root.putObject("pre_tokenizer");
		pre.put("type", "ByteLevel");
		pre.put("add_prefix_space", false);
		pre.put("trim_offsets", true);
		pre.put("use_regex", true);
		root.putNull("post_processor");
		ObjectNode decoder = root.putObject("decoder");
		decoder.put("type", "ByteLevel");
		decoder.put("add_prefix_space", false);
		decoder.put("trim_offsets", true);
		decoder.put("use_regex", true);
		ObjectNode model = root.putObject("model");
		model.put("type", "BPE");
		model.putNull("dropout");
		model.putNull("unk_token");
		model.put("fuse_unk", false);
		model.put("byte_fallback", false);
		ObjectNode vocab = model.putObject("vocab");
		// GPT-2's byte-to-character map: printable bytes stand for themselves
		int next = 0;
		for (int b = 0; b < 256; b++) {
			boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
			vocab.put(String.valueOf((char) (printable ? b : 256 + next++)), b);
		}
		model.putArray("merges");
		try {
			Files.createDirectories(directory);
			JSON.writeValue(directory.resolve("tokenizer.json").toFile(), root);
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
		return Tokenizer.fromHuggingFace(directory);
	}

}

package dev.griffin.serve.weights;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Opens a checkpoint from a path: a {@code .gguf} file or a Hugging Face model directory.
 */
public final class Checkpoints {

	/** The default model's file name, as scripts/fetch-model caches it. */
	public static final String DEFAULT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf";

	private Checkpoints() {
	}

	/**
	 * Where scripts/fetch-model puts the default model: $GRIFFIN_MODEL_DIR, else
	 * $XDG_CACHE_HOME/griffin-serve/models, else ~/.cache/griffin-serve/models.
	 */
	public static Path defaultModelPath() {
		String dir = System.getenv("GRIFFIN_MODEL_DIR");
		if (dir == null) {
			String cache = System.getenv("XDG_CACHE_HOME");
			dir = ((cache != null) ? cache : System.getProperty("user.home") + "/.cache") + "/griffin-serve/models";
		}
		return Path.of(dir, DEFAULT_MODEL);
	}

	public static Checkpoint open(Path path) {
		if (!Files.exists(path)) {
			throw new CheckpointException("model path " + path + " does not exist");
		}
		if (Files.isDirectory(path)) {
			return new HuggingFaceCheckpoint(path);
		}
		if (path.getFileName().toString().endsWith(".gguf")) {
			return new GgufCheckpoint(path);
		}
		throw new CheckpointException(
				path + " is neither a .gguf file nor a Hugging Face model directory (with config.json)");
	}

}

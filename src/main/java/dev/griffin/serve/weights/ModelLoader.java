package dev.griffin.serve.weights;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Opens a checkpoint from a path: a {@code .gguf} file or a Hugging Face model directory.
 */
public final class ModelLoader {

	private ModelLoader() {
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

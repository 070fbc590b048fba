package dev.griffin.serve.generation;

/**
 * A request that arrived before the model was loaded and warmed up, or after it failed to
 * load.
 */
public class ModelNotReadyException extends RuntimeException {

	public ModelNotReadyException(String modelId, ModelService.State state, String failure) {
		super((state == ModelService.State.FAILED) ? "model %s failed to load: %s".formatted(modelId, failure)
				: "model %s is still loading; retry shortly".formatted(modelId));
	}

}

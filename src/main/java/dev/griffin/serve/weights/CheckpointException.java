package dev.griffin.serve.weights;

/**
 * A checkpoint that cannot be loaded: missing or truncated file, missing tensor, wrong
 * shape, unsupported architecture or quantisation. The message names the file, the tensor
 * and what was expected, so that the operator can act on it.
 */
public class CheckpointException extends RuntimeException {

	public CheckpointException(String message) {
		super(message);
	}

	public CheckpointException(String message, Throwable cause) {
		super(message, cause);
	}

}

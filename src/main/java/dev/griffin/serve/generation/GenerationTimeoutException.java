package dev.griffin.serve.generation;

/** A generation that ran past the configured maximum generation time. */
public class GenerationTimeoutException extends RuntimeException {

	public GenerationTimeoutException() {
		super("generation exceeded the maximum generation time");
	}

}

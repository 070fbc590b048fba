package dev.griffin.serve.generation;

/**
 * A failure of the engine itself (a forward pass, a cache restore, native memory), as
 * opposed to a fault of the request: only these count towards the circuit breaker.
 */
public class EngineFailureException extends RuntimeException {

	public EngineFailureException(String message, Throwable cause) {
		super(message, cause);
	}

}

package dev.griffin.serve.generation;

import java.time.Duration;

/**
 * A stream whose client stopped reading for longer than the stall timeout; its generation
 * is cancelled and the connection is dropped (nothing more can reach it).
 */
public class StreamStalledException extends RuntimeException {

	public StreamStalledException(Duration timeout) {
		super("the client read nothing for " + timeout + "; the stream was cancelled");
	}

}

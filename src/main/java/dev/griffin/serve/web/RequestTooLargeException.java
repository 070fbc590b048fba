package dev.griffin.serve.web;

/** A request body over the configured limit. */
public class RequestTooLargeException extends RuntimeException {

	public RequestTooLargeException(long size, long limit) {
		super("The request body is %d bytes; the limit is %d bytes.".formatted(size, limit));
	}

}

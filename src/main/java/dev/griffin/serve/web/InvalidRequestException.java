package dev.griffin.serve.web;

/**
 * A request that is malformed or out of range; names the offending field (OpenAI's
 * {@code param}).
 */
public class InvalidRequestException extends RuntimeException {

	private final String param;

	private final String code;

	public InvalidRequestException(String param, String message) {
		this(param, message, null);
	}

	public InvalidRequestException(String param, String message, String code) {
		super(message);
		this.param = param;
		this.code = code;
	}

	public String param() {
		return this.param;
	}

	public String code() {
		return this.code;
	}

}

package dev.griffin.serve.web;

/** A model route called without a valid API key while keys are configured. */
public class AuthenticationException extends RuntimeException {

	public AuthenticationException(String message) {
		super(message);
	}

}

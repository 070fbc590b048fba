package dev.griffin.serve.web;

/** A request naming a model this server does not serve. */
public class UnknownModelException extends RuntimeException {

	public UnknownModelException(String model) {
		super("The model '%s' does not exist or you do not have access to it.".formatted(model));
	}

}

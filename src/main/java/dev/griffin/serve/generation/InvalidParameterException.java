package dev.griffin.serve.generation;

/**
 * A request parameter outside its range, thrown by the record that owns the rule; names
 * the parameter as clients spell it, so the web layer reports it without repeating the
 * rule.
 */
public class InvalidParameterException extends IllegalArgumentException {

	private final String parameter;

	public InvalidParameterException(String parameter, String message) {
		super(message);
		this.parameter = parameter;
	}

	/** The parameter's wire name, e.g. {@code repetition_penalty}. */
	public String parameter() {
		return this.parameter;
	}

}

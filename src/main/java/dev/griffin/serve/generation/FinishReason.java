package dev.griffin.serve.generation;

/** Why generation ended, with OpenAI's names. */
public enum FinishReason {

	/** An end token or a stop string. */
	STOP("stop"),
	/** The token budget or the context length. */
	LENGTH("length"),
	/** The consumer asked to stop (a client that went away). */
	CANCELLED("cancelled");

	private final String wireName;

	FinishReason(String wireName) {
		this.wireName = wireName;
	}

	public String wireName() {
		return this.wireName;
	}

}

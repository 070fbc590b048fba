package dev.griffin.serve.generation;

/** What a streamed generation emits, in order: one Started, Tokens, one Finished. */
public sealed interface GenerationEvent {

	/**
	 * The prompt is processed.
	 *
	 * @param choice which of the request's n choices
	 * @param cacheHit whether the prompt cache supplied the prompt's processing
	 */
	record Started(int choice, boolean cacheHit) implements GenerationEvent {

	}

	/** A generated token of a choice. */
	record Token(int choice, GeneratedToken token) implements GenerationEvent {

	}

	/** A choice is complete. */
	record Finished(int choice, Generator.Result result) implements GenerationEvent {

	}

}

package dev.griffin.serve.generation;

import java.util.List;

/**
 * What a streamed generation emits, in order: a PromptScored when the job asks for it,
 * then for each choice one Started, Tokens, one Finished.
 */
public sealed interface GenerationEvent {

	/**
	 * The prompt's tokens with their log-probabilities
	 * ({@link GenerationJob#scorePrompt}), once per request, before the first choice
	 * starts; the first token has none (NaN).
	 */
	record PromptScored(List<GeneratedToken> tokens) implements GenerationEvent {

		public PromptScored {
			tokens = List.copyOf(tokens);
		}

	}

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

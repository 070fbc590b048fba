package dev.griffin.serve.generation;

import dev.griffin.serve.griffin.GriffinSettings;

/**
 * One request's work for the scheduler.
 *
 * @param prompt token ids
 * @param params sampling and stopping
 * @param griffin GRIFFIN settings
 * @param choices how many independent completions (OpenAI's n); choice i samples with
 * seed + i
 * @param topLogprobs -1 for none, else alternatives per token (at most
 * {@link #MAX_TOP_LOGPROBS})
 * @param useCache whether the prompt cache may serve and store this prompt
 * @param tenantSalt salt of the cache key (tenant isolation), or null
 * @param rateLimitKey whose rate limit applies (the API key), or null for the shared one
 * @param scorePrompt whether the prompt's tokens are scored too: each one's
 * log-probability given the tokens before it, with topLogprobs alternatives, sent as one
 * {@link GenerationEvent.PromptScored} before the first choice starts (a completion's
 * {@code echo} with {@code logprobs}); such a prompt is run, not served from the cache
 */
public record GenerationJob(int[] prompt, SamplingParams params, GriffinSettings griffin, int choices, int topLogprobs,
		boolean useCache, String tenantSalt, String rateLimitKey, boolean scorePrompt) {

	/** The most choices one request may ask for. */
	public static final int MAX_CHOICES = 8;

	/** The most alternatives per token a request may ask for (OpenAI's bound). */
	public static final int MAX_TOP_LOGPROBS = 20;

	public GenerationJob {
		if (choices < 1 || choices > MAX_CHOICES) {
			throw new InvalidParameterException("n", "n must be in [1, %d], got %d".formatted(MAX_CHOICES, choices));
		}
		if (topLogprobs < -1 || topLogprobs > MAX_TOP_LOGPROBS) {
			throw new InvalidParameterException("top_logprobs",
					"top_logprobs must be in [0, %d], got %d".formatted(MAX_TOP_LOGPROBS, topLogprobs));
		}
		if (scorePrompt && (topLogprobs < 0 || useCache)) {
			throw new IllegalArgumentException("a scored prompt needs log-probabilities and no prompt cache");
		}
	}

}

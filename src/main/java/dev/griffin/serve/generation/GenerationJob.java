package dev.griffin.serve.generation;

/**
 * One request's work for the scheduler.
 *
 * @param prompt token ids
 * @param params sampling and stopping
 * @param griffin GRIFFIN settings
 * @param choices how many independent completions (OpenAI's n); choice i samples with
 * seed + i
 * @param topLogprobs -1 for none, else alternatives per token
 * @param useCache whether the expert cache may serve and store this prompt
 * @param tenantSalt salt of the cache key (tenant isolation), or null
 * @param rateLimitKey whose rate limit applies (the API key), or null for the shared one
 */
public record GenerationJob(int[] prompt, SamplingParams params, GriffinSettings griffin, int choices, int topLogprobs,
		boolean useCache, String tenantSalt, String rateLimitKey) {

	public GenerationJob {
		if (choices < 1 || choices > 8) {
			throw new IllegalArgumentException("n must be in [1, 8], got " + choices);
		}
	}

}

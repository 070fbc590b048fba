package dev.griffin.serve.generation;

import java.util.List;

/**
 * One generated token as it is streamed.
 *
 * @param id token id
 * @param text the text this token completes (empty while a UTF-8 character or a possible
 * stop string is incomplete)
 * @param logprob log-probability under the model, NaN unless requested
 * @param topLogprobs the most likely alternatives at this step, empty unless requested
 */
public record GeneratedToken(int id, String text, float logprob, List<TopLogprob> topLogprobs) {

	/** An alternative token and its log-probability. */
	public record TopLogprob(int id, String token, float logprob) {

	}

}

package dev.griffin.serve.generation;

import java.util.List;

/**
 * One generated token as it is streamed, or the text a sequence releases as it ends on an
 * end token without a token of its own ({@link #released}).
 *
 * @param id token id, or {@link #NO_TOKEN} for released text
 * @param text the text this token completes (empty while a UTF-8 character or a possible
 * stop string is incomplete)
 * @param logprob log-probability under the model, NaN unless requested
 * @param topLogprobs the most likely alternatives at this step, empty unless requested
 */
public record GeneratedToken(int id, String text, float logprob, List<TopLogprob> topLogprobs) {

	/** The id of released text, which no token of the output stands for. */
	public static final int NO_TOKEN = -1;

	/**
	 * Text held back while it might still begin a stop string, or the bytes of an
	 * unfinished character, released when the sequence ends on an end token.
	 */
	public static GeneratedToken released(String text) {
		return new GeneratedToken(NO_TOKEN, text, Float.NaN, List.of());
	}

	/** Whether this is a token of the output (not {@link #released} text). */
	public boolean isToken() {
		return this.id != NO_TOKEN;
	}

	/** An alternative token and its log-probability. */
	public record TopLogprob(int id, String token, float logprob) {

	}

}

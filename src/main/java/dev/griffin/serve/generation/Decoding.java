package dev.griffin.serve.generation;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.tokenizer.IncrementalDetokenizer;
import dev.griffin.serve.tokenizer.Tokenizer;

/**
 * One sequence's side of generation, apart from the model: from each step's next-token
 * logits it samples a token, checks the stop conditions and the token budget, and turns
 * the token into the text that may be streamed (holding back what may still become a stop
 * string). The sequential {@link Generator} and the batched {@link EngineLoop} drive it
 * the same way: {@link #next} after the prompt and after every decode step, until
 * {@link #finished()}. Not thread-safe.
 */
final class Decoding {

	private final SamplingParams params;

	private final int topLogprobs;

	private final Tokenizer tokenizer;

	private final Sampler sampler;

	private final StopCondition stop;

	private final IncrementalDetokenizer detokenizer;

	private final StringBuilder text = new StringBuilder();

	private final int[] tokens;

	private int count;

	private int emitted;

	private FinishReason reason;

	/** Room for the exponentials of a token's log-probabilities, kept between tokens. */
	private float[] scratch;

	/**
	 * @param topLogprobs -1 for no log-probabilities, otherwise how many alternatives to
	 * report per token
	 */
	Decoding(SamplingParams params, int topLogprobs, ModelConfig config, Tokenizer tokenizer, int[] prompt) {
		this.params = params;
		this.topLogprobs = topLogprobs;
		this.tokenizer = tokenizer;
		this.sampler = new Sampler(params, config.vocabularySize(), prompt);
		this.stop = new StopCondition(params, config.eosTokenIds());
		this.detokenizer = new IncrementalDetokenizer(tokenizer, true);
		this.tokens = new int[params.maxNewTokens()];
	}

	/**
	 * Samples the token that follows {@code logits} (which the sampler may change) and
	 * advances the text.
	 * @return the token and the text it completes; when the sampled token is an end
	 * token, the text the sequence still held back ({@link GeneratedToken#released}), or
	 * null when it held none
	 * @throws IllegalStateException when the sequence has finished
	 * @throws RuntimeException from the sampler, for logits with nothing to sample (NaN)
	 */
	GeneratedToken next(float[] logits) {
		if (this.reason != null) {
			throw new IllegalStateException("the sequence has finished: " + this.reason);
		}
		// the sampler works in place (penalties, temperature); log-probabilities are
		// of the model's own logits
		float[] raw = (this.topLogprobs >= 0) ? logits.clone() : null;
		if (this.count < this.params.minTokens()) {
			this.stop.ban(logits);
		}
		int token = this.sampler.sample(logits);
		if (this.stop.isStopToken(token)) {
			// what was held back for a stop string that did not come, and the bytes of an
			// unfinished character, belong to the output all the same
			this.reason = FinishReason.STOP;
			this.text.append(this.detokenizer.flush());
			String rest = advance();
			return rest.isEmpty() ? null : GeneratedToken.released(rest);
		}
		this.sampler.accept(token);
		this.tokens[this.count++] = token;
		this.text.append(this.detokenizer.accept(token));
		boolean last = this.count == this.params.maxNewTokens();
		if (last) {
			this.text.append(this.detokenizer.flush());
			this.reason = FinishReason.LENGTH;
		}
		String piece = advance();
		return (raw != null) ? withLogprobs(token, piece, raw) : new GeneratedToken(token, piece, Float.NaN, List.of());
	}

	/**
	 * Ends the text at a stop string that it now holds, and returns what may be streamed
	 * of it: all of it once the sequence has finished, otherwise all but what may still
	 * begin a stop string.
	 */
	private String advance() {
		int from = Math.max(0, this.emitted - this.stop.holdBack());
		// no stop string ends the text before min_tokens tokens (vLLM's rule); then, as
		// always, only the text not streamed yet is searched
		int stopAt = (this.count < this.params.minTokens()) ? -1 : this.stop.stopStringIndex(this.text.substring(from));
		if (stopAt >= 0) {
			this.text.setLength(from + stopAt);
			this.reason = FinishReason.STOP;
		}
		int ready = (this.reason != null) ? this.text.length()
				: Math.max(this.emitted, this.text.length() - this.stop.holdBack());
		String piece = this.text.substring(this.emitted, ready);
		this.emitted = ready;
		return piece;
	}

	/** Ends the sequence early (the client left, or its stream stalled). */
	void cancel() {
		if (this.reason == null) {
			this.reason = FinishReason.CANCELLED;
		}
	}

	boolean finished() {
		return this.reason != null;
	}

	/** Why the sequence ended, or null while it runs. */
	FinishReason reason() {
		return this.reason;
	}

	/** The last sampled token: the input of the next decode step. */
	int lastToken() {
		if (this.count == 0) {
			throw new IllegalStateException("no token sampled yet");
		}
		return this.tokens[this.count - 1];
	}

	/** How many tokens have been generated. */
	int count() {
		return this.count;
	}

	/** What the sequence produced, once it has finished. */
	Generator.Result result(int promptTokens, boolean cacheHit, Generator.Timings timings) {
		return new Generator.Result(this.text.substring(0, this.emitted), Arrays.copyOf(this.tokens, this.count),
				promptTokens, (this.reason != null) ? this.reason : FinishReason.CANCELLED, cacheHit, timings);
	}

	private GeneratedToken withLogprobs(int token, String piece, float[] logits) {
		if (this.scratch == null || this.scratch.length != logits.length) {
			this.scratch = new float[logits.length];
		}
		return scored(token, piece, logits, this.topLogprobs, this.tokenizer, this.scratch);
	}

	/**
	 * A token with its log-probability under {@code logits} and the {@code top} most
	 * likely alternatives (none for 0).
	 * @param scratch as long as the logits, overwritten
	 */
	static GeneratedToken scored(int token, String piece, float[] logits, int top, Tokenizer tokenizer,
			float[] scratch) {
		float logZ = (float) Sampler.logSumExp(logits, scratch);
		List<GeneratedToken.TopLogprob> alternatives = new ArrayList<>();
		if (top > 0) {
			for (int best : Sampler.largest(logits, top)) {
				alternatives.add(new GeneratedToken.TopLogprob(best,
						new String(tokenizer.tokenBytes(best), StandardCharsets.UTF_8), logits[best] - logZ));
			}
		}
		return new GeneratedToken(token, piece, logits[token] - logZ, alternatives);
	}

}

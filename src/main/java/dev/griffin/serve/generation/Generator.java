package dev.griffin.serve.generation;

import java.util.Arrays;

import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.tokenizer.IncrementalDetokenizer;
import dev.griffin.serve.tokenizer.Tokenizer;

/**
 * The blocking generation loop: prefill (GRIFFIN's prompt phase and expert selection),
 * then one decode step per token, each handed to a listener as soon as it is sampled.
 * Plain Java on the calling thread; the service adapts it to a Flux.
 */
public final class Generator {

	/** Prompt tokens per prefill chunk; bounds the activation memory of long prompts. */
	public static final int PREFILL_CHUNK = 512;

	private final CausalLm model;

	private final Tokenizer tokenizer;

	/** Receives text as it is generated; returning false cancels generation. */
	@FunctionalInterface
	public interface TokenListener {

		boolean onToken(int token, String text);

	}

	/**
	 * @param prefillNanos prompt processing, expert selection included
	 * @param firstTokenNanos from start to the first sampled token
	 * @param decodeNanos all decode steps
	 * @param decodeSteps how many decode steps ran
	 */
	public record Timings(long prefillNanos, long firstTokenNanos, long decodeNanos, int decodeSteps) {

		public double decodeTokensPerSecond() {
			return (this.decodeSteps == 0) ? 0 : this.decodeSteps / (this.decodeNanos / 1e9);
		}

	}

	/** What a generation produced. */
	public record Result(String text, int[] tokens, int promptTokens, FinishReason finishReason, Timings timings) {

	}

	public Generator(CausalLm model, Tokenizer tokenizer) {
		this.model = model;
		this.tokenizer = tokenizer;
	}

	public CausalLm model() {
		return this.model;
	}

	public Tokenizer tokenizer() {
		return this.tokenizer;
	}

	/** Checks that prompt and budget fit the context, with the numbers in the message. */
	public void checkContextLength(int promptTokens, int maxNewTokens) {
		int context = this.model.config().maxPositionEmbeddings();
		if (promptTokens == 0) {
			throw new IllegalArgumentException("the prompt is empty");
		}
		if (promptTokens + maxNewTokens > context) {
			throw new ContextLengthExceededException(promptTokens, maxNewTokens, context);
		}
	}

	public Result generate(int[] prompt, SamplingParams params, TokenListener listener) {
		checkContextLength(prompt.length, params.maxNewTokens());
		long seed = (params.seed() != null) ? params.seed() : System.nanoTime();
		Sampler sampler = new Sampler(params, this.model.config().vocabularySize(), prompt);
		StopCondition stop = new StopCondition(params, this.model.config().eosTokenIds());
		IncrementalDetokenizer detokenizer = new IncrementalDetokenizer(this.tokenizer, true);
		StringBuilder text = new StringBuilder();
		int emitted = 0;
		int[] tokens = new int[params.maxNewTokens()];
		int count = 0;
		FinishReason reason = FinishReason.LENGTH;
		long start = System.nanoTime();
		long prefillEnd;
		long firstToken = 0;
		long decodeNanos = 0;
		int decodeSteps = 0;
		try (InferenceSession session = new InferenceSession(this.model, prompt.length + params.maxNewTokens(), seed)) {
			float[] logits = session.prefill(prompt, PREFILL_CHUNK);
			session.finishPrompt();
			prefillEnd = System.nanoTime();
			while (true) {
				int token = sampler.sample(logits);
				if (count == 0) {
					firstToken = System.nanoTime() - start;
				}
				if (stop.isStopToken(token)) {
					reason = FinishReason.STOP;
					break;
				}
				sampler.accept(token);
				tokens[count++] = token;
				text.append(detokenizer.accept(token));
				boolean last = count == params.maxNewTokens();
				if (last) {
					text.append(detokenizer.flush());
				}
				int stopAt = stop.stopStringIndex(text.substring(Math.max(0, emitted - stop.holdBack())));
				if (stopAt >= 0) {
					stopAt += Math.max(0, emitted - stop.holdBack());
					text.setLength(stopAt);
					reason = FinishReason.STOP;
				}
				int ready = (reason == FinishReason.STOP || last) ? text.length()
						: Math.max(emitted, text.length() - stop.holdBack());
				String piece = text.substring(emitted, ready);
				emitted = ready;
				if (!listener.onToken(token, piece)) {
					reason = FinishReason.CANCELLED;
					break;
				}
				if (reason == FinishReason.STOP || last) {
					break;
				}
				long stepStart = System.nanoTime();
				logits = session.decode(token);
				decodeNanos += System.nanoTime() - stepStart;
				decodeSteps++;
			}
		}
		Timings timings = new Timings(prefillEnd - start, firstToken, decodeNanos, decodeSteps);
		return new Result(text.substring(0, emitted), Arrays.copyOf(tokens, count), prompt.length, reason, timings);
	}

}

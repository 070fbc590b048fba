package dev.griffin.serve.generation;

import java.util.Arrays;

import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.tokenizer.Tokenizer;

/**
 * The blocking generation loop: prefill (GRIFFIN's prompt phase and expert selection) or
 * a restore from the prompt cache, then one decode step per token, each handed to a
 * listener as soon as it is sampled. Plain Java on the calling thread, one sequence at a
 * time: the command line, the warm-up, bench and the evaluation use it. The service runs
 * its requests on the {@link EngineLoop}, which drives the same per-sequence
 * {@link Decoding} over batched steps.
 */
public final class Generator {

	/** Prompt tokens per prefill chunk; bounds the activation memory of long prompts. */
	public static final int PREFILL_CHUNK = 512;

	private final CausalLm model;

	private final Tokenizer tokenizer;

	/**
	 * Receives each token as it is generated, with the text it completes, and text
	 * released at the end with {@link GeneratedToken#NO_TOKEN}; returning false cancels
	 * generation.
	 */
	@FunctionalInterface
	public interface TokenListener {

		boolean onToken(int token, String text);

	}

	/**
	 * Receives the phases of a generation; returning false from either call cancels it.
	 */
	public interface Listener {

		/**
		 * Polled between prefill chunks, so a client that left stops a long prompt early.
		 */
		default boolean isCancelled() {
			return false;
		}

		/** The prompt is processed, by prefill or from the prompt cache. */
		default boolean onPromptProcessed(boolean cacheHit) {
			return true;
		}

		/**
		 * A token, or text released at the end ({@link GeneratedToken#isToken()} false).
		 */
		boolean onToken(GeneratedToken token);

	}

	/**
	 * Per-request choices beyond sampling.
	 *
	 * @param topLogprobs -1 for no log-probabilities, otherwise how many alternatives to
	 * report (validated by {@link GenerationJob})
	 * @param cache the prompt cache, or null
	 * @param cacheKey this prompt's key in the cache (ignored without a cache)
	 * @param deadlineNanos {@link System#nanoTime()} after which generation fails, 0 for
	 * none
	 */
	public record Options(int topLogprobs, PromptCache cache, PromptCache.Key cacheKey, long deadlineNanos) {

		public static final Options NONE = new Options(-1, null, null, 0);

	}

	/**
	 * @param prefillNanos prompt processing (or cache restore), expert selection included
	 * @param selectionNanos of which the end of the prompt phase, where each layer's
	 * method ranks its neurons and picks the experts (0 on a cache hit: nothing is
	 * picked)
	 * @param firstTokenNanos from start to the first sampled token
	 * @param decodeNanos all decode steps
	 * @param decodeSteps how many decode steps ran
	 */
	public record Timings(long prefillNanos, long selectionNanos, long firstTokenNanos, long decodeNanos,
			int decodeSteps) {

		public double decodeTokensPerSecond() {
			return (this.decodeSteps == 0) ? 0 : this.decodeSteps / (this.decodeNanos / 1e9);
		}

	}

	/** What a generation produced. */
	public record Result(String text, int[] tokens, int promptTokens, FinishReason finishReason, boolean cacheHit,
			Timings timings) {

	}

	public Generator(CausalLm model, Tokenizer tokenizer) {
		this.model = model;
		this.tokenizer = tokenizer;
	}

	/**
	 * The one context-length rule: prompt and budget fit a context of {@code context}
	 * tokens; the message has the numbers.
	 */
	public static void checkContextLength(int promptTokens, int maxNewTokens, int context) {
		if (promptTokens == 0) {
			throw new InvalidParameterException("prompt", "the prompt is empty");
		}
		if (promptTokens + maxNewTokens > context) {
			throw new ContextLengthExceededException(promptTokens, maxNewTokens, context);
		}
	}

	public Result generate(int[] prompt, SamplingParams params, TokenListener listener) {
		return generate(prompt, params, Options.NONE, new Listener() {
			@Override
			public boolean onToken(GeneratedToken token) {
				return listener.onToken(token.id(), token.text());
			}
		});
	}

	public Result generate(int[] prompt, SamplingParams params, Options options, Listener listener) {
		checkContextLength(prompt.length, params.maxNewTokens(), this.model.config().maxPositionEmbeddings());
		long seed = (params.seed() != null) ? params.seed() : System.nanoTime();
		Decoding decoding = new Decoding(params, options.topLogprobs(), this.model.config(), this.tokenizer, prompt);
		long start = System.nanoTime();
		long prefillEnd;
		long firstToken = 0;
		long decodeNanos = 0;
		int decodeSteps = 0;
		boolean cacheHit;
		long[] selection = new long[1];
		try (InferenceSession session = engine("allocate",
				() -> new InferenceSession(this.model, prompt.length + params.maxNewTokens(), seed));
				PromptCache.Processed processed = engine("prompt", () -> {
					PromptCache.Prefill prefill = () -> prefill(session, prompt, options, listener, selection);
					return (options.cache() != null)
							? options.cache()
								.acquireOrPrefill(options.cacheKey(), session, prompt, prefill, this.model.manager())
							: PromptCache.uncached(prefill);
				})) {
			float[] logits = processed.lastLogits();
			cacheHit = processed.hit();
			prefillEnd = System.nanoTime();
			if (processed.cancelled() || !listener.onPromptProcessed(cacheHit)) {
				decoding.cancel();
			}
			while (!decoding.finished()) {
				checkDeadline(options);
				float[] current = logits;
				// the parameters are validated, so logits with nothing to sample are the
				// engine's fault
				GeneratedToken generated = engine("sample", () -> decoding.next(current));
				if (firstToken == 0) {
					firstToken = System.nanoTime() - start;
				}
				if (generated == null) {
					break;
				}
				if (!listener.onToken(generated)) {
					decoding.cancel();
					break;
				}
				if (decoding.finished()) {
					break;
				}
				long stepStart = System.nanoTime();
				logits = engine("decode", () -> session.decode(generated.id()));
				decodeNanos += System.nanoTime() - stepStart;
				decodeSteps++;
			}
		}
		Timings timings = new Timings(prefillEnd - start, selection[0], firstToken, decodeNanos, decodeSteps);
		return decoding.result(prompt.length, cacheHit, timings);
	}

	/**
	 * Prefill chunk by chunk, so that the deadline and a cancellation are noticed within
	 * one chunk of a long prompt, then the end of the prompt phase (expert selection).
	 * @param selection where the end of the prompt phase's time goes
	 * @return the last prompt token's logits, or null when cancelled
	 */
	private float[] prefill(InferenceSession session, int[] prompt, Options options, Listener listener,
			long[] selection) {
		float[] logits = null;
		for (int from = 0; from < prompt.length; from += PREFILL_CHUNK) {
			checkDeadline(options);
			if (listener.isCancelled()) {
				return null;
			}
			int[] chunk = Arrays.copyOfRange(prompt, from, Math.min(prompt.length, from + PREFILL_CHUNK));
			logits = engine("prefill", () -> session.prefill(chunk, PREFILL_CHUNK));
		}
		engine("prefill", () -> {
			long selectionStart = System.nanoTime();
			session.finishPrompt();
			selection[0] = System.nanoTime() - selectionStart;
			// every step of this sequence runs alone: its experts' weights are
			// gathered as part of the prompt, not in the first step
			session.gatherWeights();
			return null;
		});
		return logits;
	}

	private <T> T engine(String phase, java.util.function.Supplier<T> work) {
		return EngineLoop.engine(EngineProbe.NONE, phase, work);
	}

	private static void checkDeadline(Options options) {
		if (options.deadlineNanos() != 0 && System.nanoTime() - options.deadlineNanos() > 0) {
			throw new GenerationTimeoutException();
		}
	}

}

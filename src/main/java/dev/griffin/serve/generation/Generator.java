package dev.griffin.serve.generation;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.tokenizer.IncrementalDetokenizer;
import dev.griffin.serve.tokenizer.Tokenizer;

/**
 * The blocking generation loop: prefill (GRIFFIN's prompt phase and expert selection) or
 * a restore from the prompt cache, then one decode step per token, each handed to a
 * listener as soon as it is sampled. Plain Java on the calling thread; the service adapts
 * it to a Flux.
 */
public final class Generator {

	/** Prompt tokens per prefill chunk; bounds the activation memory of long prompts. */
	public static final int PREFILL_CHUNK = 512;

	private final CausalLm model;

	private final Tokenizer tokenizer;

	private final EngineProbe probe;

	/** Receives text as it is generated; returning false cancels generation. */
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
	public record Result(String text, int[] tokens, int promptTokens, FinishReason finishReason, boolean cacheHit,
			Timings timings) {

	}

	public Generator(CausalLm model, Tokenizer tokenizer) {
		this(model, tokenizer, EngineProbe.NONE);
	}

	public Generator(CausalLm model, Tokenizer tokenizer, EngineProbe probe) {
		this.model = model;
		this.tokenizer = tokenizer;
		this.probe = probe;
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
		boolean cacheHit;
		try (InferenceSession session = engine("allocate",
				() -> new InferenceSession(this.model, prompt.length + params.maxNewTokens(), seed));
				PromptCache.Processed processed = engine("prompt", () -> {
					PromptCache.Prefill prefill = () -> prefill(session, prompt, options, listener);
					return (options.cache() != null)
							? options.cache()
								.acquireOrPrefill(options.cacheKey(), session, prompt, prefill, this.model.manager())
							: PromptCache.uncached(prefill);
				})) {
			float[] logits = processed.lastLogits();
			cacheHit = processed.hit();
			if (processed.cancelled()) {
				reason = FinishReason.CANCELLED;
			}
			prefillEnd = System.nanoTime();
			if (reason != FinishReason.CANCELLED && !listener.onPromptProcessed(cacheHit)) {
				reason = FinishReason.CANCELLED;
			}
			while (reason != FinishReason.CANCELLED) {
				checkDeadline(options);
				float[] raw = (options.topLogprobs() >= 0) ? logits.clone() : null;
				float[] current = logits;
				// the parameters are validated, so logits with nothing to sample are the
				// engine's fault
				int token = engine("sample", () -> sampler.sample(current));
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
				int from = Math.max(0, emitted - stop.holdBack());
				int stopAt = stop.stopStringIndex(text.substring(from));
				if (stopAt >= 0) {
					text.setLength(from + stopAt);
					reason = FinishReason.STOP;
				}
				int ready = (reason == FinishReason.STOP || last) ? text.length()
						: Math.max(emitted, text.length() - stop.holdBack());
				String piece = text.substring(emitted, ready);
				emitted = ready;
				GeneratedToken generated = (raw != null) ? withLogprobs(token, piece, raw, options.topLogprobs())
						: new GeneratedToken(token, piece, Float.NaN, List.of());
				if (!listener.onToken(generated)) {
					reason = FinishReason.CANCELLED;
					break;
				}
				if (reason == FinishReason.STOP || last) {
					break;
				}
				long stepStart = System.nanoTime();
				logits = engine("decode", () -> session.decode(token));
				decodeNanos += System.nanoTime() - stepStart;
				decodeSteps++;
			}
		}
		Timings timings = new Timings(prefillEnd - start, firstToken, decodeNanos, decodeSteps);
		return new Result(text.substring(0, emitted), Arrays.copyOf(tokens, count), prompt.length, reason, cacheHit,
				timings);
	}

	/**
	 * Prefill chunk by chunk, so that the deadline and a cancellation are noticed within
	 * one chunk of a long prompt, then the end of the prompt phase (expert selection).
	 * @return the last prompt token's logits, or null when cancelled
	 */
	private float[] prefill(InferenceSession session, int[] prompt, Options options, Listener listener) {
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
			session.finishPrompt();
			return null;
		});
		return logits;
	}

	/**
	 * Runs engine work; anything it throws is an engine failure (what the circuit breaker
	 * counts), never the request's fault: requests are validated before they reach the
	 * engine.
	 */
	private <T> T engine(String phase, java.util.function.Supplier<T> work) {
		try {
			this.probe.beforeForward(phase);
			return work.get();
		}
		catch (EngineFailureException | GenerationTimeoutException ex) {
			// an inner phase's failure, or the deadline passing during prefill
			throw ex;
		}
		catch (RuntimeException ex) {
			throw new EngineFailureException("the engine failed during " + phase + ": " + ex, ex);
		}
	}

	private static void checkDeadline(Options options) {
		if (options.deadlineNanos() != 0 && System.nanoTime() - options.deadlineNanos() > 0) {
			throw new GenerationTimeoutException();
		}
	}

	private GeneratedToken withLogprobs(int token, String piece, float[] logits, int top) {
		float max = Float.NEGATIVE_INFINITY;
		for (float logit : logits) {
			max = Math.max(max, logit);
		}
		double sum = 0;
		for (float logit : logits) {
			sum += Math.exp(logit - max);
		}
		float logZ = (float) (max + Math.log(sum));
		List<GeneratedToken.TopLogprob> alternatives = new ArrayList<>();
		if (top > 0) {
			boolean[] used = new boolean[logits.length];
			for (int k = 0; k < top; k++) {
				int best = -1;
				for (int i = 0; i < logits.length; i++) {
					if (!used[i] && (best < 0 || logits[i] > logits[best])) {
						best = i;
					}
				}
				used[best] = true;
				alternatives.add(new GeneratedToken.TopLogprob(best,
						new String(this.tokenizer.tokenBytes(best), StandardCharsets.UTF_8), logits[best] - logZ));
			}
		}
		return new GeneratedToken(token, piece, logits[token] - logZ, alternatives);
	}

}

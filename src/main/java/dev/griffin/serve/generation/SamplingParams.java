package dev.griffin.serve.generation;

import java.util.List;
import java.util.Map;

/**
 * How the next token is chosen and when generation stops. Validated on construction.
 *
 * @param temperature 0 for greedy decoding, otherwise logits are divided by it
 * @param topK keep the k most likely tokens, 0 to disable
 * @param topP keep the smallest set whose probability reaches p, 1 to disable
 * @param minP drop tokens less likely than minP times the most likely one, 0 to disable
 * @param repetitionPenalty divides positive (multiplies negative) logits of seen tokens,
 * 1 to disable
 * @param presencePenalty subtracted once from the logit of every token already generated
 * @param frequencyPenalty subtracted per occurrence of a token already generated
 * @param seed makes sampling reproducible; null draws one
 * @param maxNewTokens the most tokens to generate
 * @param stopStrings generation ends before the first of these in the output text
 * @param stopTokenIds extra token ids that end generation (the model's end tokens always
 * do)
 * @param ignoreEos keep generating through the model's end tokens
 * @param logitBias added to the logits of these token ids before anything else (OpenAI's
 * {@code logit_bias}: -100 all but bans a token, 100 all but forces it)
 * @param minTokens no end token, stop token or stop string ends generation before this
 * many tokens (vLLM's {@code min_tokens}); 0 for none
 */
public record SamplingParams(double temperature, int topK, double topP, double minP, double repetitionPenalty,
		double presencePenalty, double frequencyPenalty, Long seed, int maxNewTokens, List<String> stopStrings,
		List<Integer> stopTokenIds, boolean ignoreEos, Map<Integer, Float> logitBias, int minTokens) {

	/**
	 * Longest stop string, in characters (OpenAI's limit is 4 strings; vLLM bounds none).
	 */
	public static final int MAX_STOP_LENGTH = 256;

	/** Most tokens a request may bias. */
	public static final int MAX_LOGIT_BIAS = 300;

	/** Largest bias, either way (OpenAI's range). */
	public static final float LOGIT_BIAS_RANGE = 100;

	public SamplingParams {
		require(Double.isFinite(temperature) && temperature >= 0 && temperature <= 2, "temperature",
				"temperature must be in [0, 2], got " + temperature);
		require(topK >= 0, "top_k", "top_k must be >= 0, got " + topK);
		require(Double.isFinite(topP) && topP > 0 && topP <= 1, "top_p", "top_p must be in (0, 1], got " + topP);
		require(Double.isFinite(minP) && minP >= 0 && minP <= 1, "min_p", "min_p must be in [0, 1], got " + minP);
		require(Double.isFinite(repetitionPenalty) && repetitionPenalty >= 0.01 && repetitionPenalty <= 10,
				"repetition_penalty", "repetition_penalty must be in [0.01, 10], got " + repetitionPenalty);
		require(Double.isFinite(presencePenalty) && presencePenalty >= -2 && presencePenalty <= 2, "presence_penalty",
				"presence_penalty must be in [-2, 2], got " + presencePenalty);
		require(Double.isFinite(frequencyPenalty) && frequencyPenalty >= -2 && frequencyPenalty <= 2,
				"frequency_penalty", "frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
		require(maxNewTokens >= 1, "max_tokens", "max_tokens must be >= 1, got " + maxNewTokens);
		require(minTokens >= 0 && minTokens <= maxNewTokens, "min_tokens",
				"min_tokens must be in [0, max_tokens = %d], got %d".formatted(maxNewTokens, minTokens));
		stopStrings = (stopStrings != null) ? List.copyOf(stopStrings) : List.of();
		stopTokenIds = (stopTokenIds != null) ? List.copyOf(stopTokenIds) : List.of();
		require(stopStrings.size() <= 4, "stop", "at most 4 stop sequences are allowed, got " + stopStrings.size());
		require(stopStrings.stream().noneMatch(String::isEmpty), "stop", "stop sequences must not be empty");
		require(stopStrings.stream().allMatch((stop) -> stop.length() <= MAX_STOP_LENGTH), "stop",
				"stop sequences must be at most " + MAX_STOP_LENGTH + " characters");
		logitBias = (logitBias != null) ? Map.copyOf(logitBias) : Map.of();
		require(logitBias.size() <= MAX_LOGIT_BIAS, "logit_bias",
				"logit_bias may bias at most %d tokens, got %d".formatted(MAX_LOGIT_BIAS, logitBias.size()));
		for (Map.Entry<Integer, Float> bias : logitBias.entrySet()) {
			require(bias.getKey() >= 0, "logit_bias", "logit_bias keys must be token ids, got " + bias.getKey());
			float value = bias.getValue();
			require(Float.isFinite(value) && Math.abs(value) <= LOGIT_BIAS_RANGE, "logit_bias",
					"logit_bias values must be in [-100, 100], got %s for token %d".formatted(value, bias.getKey()));
		}
	}

	/** Parameters without a logit bias or a least length. */
	public SamplingParams(double temperature, int topK, double topP, double minP, double repetitionPenalty,
			double presencePenalty, double frequencyPenalty, Long seed, int maxNewTokens, List<String> stopStrings,
			List<Integer> stopTokenIds, boolean ignoreEos) {
		this(temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, maxNewTokens,
				stopStrings, stopTokenIds, ignoreEos, Map.of(), 0);
	}

	private static void require(boolean condition, String parameter, String message) {
		if (!condition) {
			throw new InvalidParameterException(parameter, message);
		}
	}

	public static SamplingParams greedy(int maxNewTokens) {
		return new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0L, maxNewTokens, List.of(), List.of(), false);
	}

	public boolean isGreedy() {
		return this.temperature == 0;
	}

	/**
	 * These parameters with another seed (choice i of a request samples with seed + i).
	 */
	public SamplingParams withSeed(long seed) {
		return new SamplingParams(this.temperature, this.topK, this.topP, this.minP, this.repetitionPenalty,
				this.presencePenalty, this.frequencyPenalty, seed, this.maxNewTokens, this.stopStrings,
				this.stopTokenIds, this.ignoreEos, this.logitBias, this.minTokens);
	}

}

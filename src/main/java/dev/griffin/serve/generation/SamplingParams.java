package dev.griffin.serve.generation;

import java.util.List;

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
 */
public record SamplingParams(double temperature, int topK, double topP, double minP, double repetitionPenalty,
		double presencePenalty, double frequencyPenalty, Long seed, int maxNewTokens, List<String> stopStrings,
		List<Integer> stopTokenIds, boolean ignoreEos) {

	public static final SamplingParams GREEDY = greedy(128);

	public SamplingParams {
		require(temperature >= 0 && temperature <= 100, "temperature must be in [0, 100], got " + temperature);
		require(topK >= 0, "top_k must be >= 0, got " + topK);
		require(topP > 0 && topP <= 1, "top_p must be in (0, 1], got " + topP);
		require(minP >= 0 && minP <= 1, "min_p must be in [0, 1], got " + minP);
		require(repetitionPenalty > 0 && repetitionPenalty <= 10,
				"repetition_penalty must be in (0, 10], got " + repetitionPenalty);
		require(presencePenalty >= -2 && presencePenalty <= 2,
				"presence_penalty must be in [-2, 2], got " + presencePenalty);
		require(frequencyPenalty >= -2 && frequencyPenalty <= 2,
				"frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
		require(maxNewTokens >= 1, "max_tokens must be >= 1, got " + maxNewTokens);
		stopStrings = (stopStrings != null) ? List.copyOf(stopStrings) : List.of();
		stopTokenIds = (stopTokenIds != null) ? List.copyOf(stopTokenIds) : List.of();
		require(stopStrings.stream().noneMatch(String::isEmpty), "stop strings must not be empty");
	}

	private static void require(boolean condition, String message) {
		if (!condition) {
			throw new IllegalArgumentException(message);
		}
	}

	public static SamplingParams greedy(int maxNewTokens) {
		return new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0L, maxNewTokens, List.of(), List.of(), false);
	}

	public boolean isGreedy() {
		return this.temperature == 0;
	}

}

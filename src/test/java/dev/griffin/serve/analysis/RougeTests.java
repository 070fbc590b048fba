package dev.griffin.serve.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/**
 * ROUGE against Google's rouge-score package on committed pairs
 * (tools/reference/make_rouge_fixtures.py).
 */
class RougeTests {

	@Test
	void agreesWithRougeScoreToOneMillionth() {
		JsonNode pairs = Fixtures.json("rouge/pairs.json");
		assertThat(pairs.size()).isGreaterThan(80);
		for (JsonNode pair : pairs) {
			Rouge.Scores scores = Rouge.score(pair.get("reference").asText(), pair.get("prediction").asText());
			check(scores.rouge1(), pair.get("rouge1"), pair);
			check(scores.rouge2(), pair.get("rouge2"), pair);
			check(scores.rougeL(), pair.get("rougeL"), pair);
		}
	}

	private static void check(Rouge.Score score, JsonNode expected, JsonNode pair) {
		assertThat(score.precision()).as("precision %s", pair).isCloseTo(expected.get(0).asDouble(), within(1e-6));
		assertThat(score.recall()).as("recall %s", pair).isCloseTo(expected.get(1).asDouble(), within(1e-6));
		assertThat(score.fmeasure()).as("F %s", pair).isCloseTo(expected.get(2).asDouble(), within(1e-6));
	}

}

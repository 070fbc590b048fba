package dev.griffin.serve.analysis;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.generation.FinishReason;
import dev.griffin.serve.generation.Generator;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/**
 * Speeds are totals over the timed rows; rows without timings (older runs) are left out.
 */
class EvalSpeedTests {

	private static final ObjectMapper JSON = new ObjectMapper();

	private static JsonNode row(int promptTokens, long prefillMs, long selectionMs, long decodeMs, int steps) {
		Map<String, Object> row = new LinkedHashMap<>();
		row.put("promptTokens", promptTokens);
		Generator.Timings timings = new Generator.Timings(prefillMs * 1_000_000, selectionMs * 1_000_000, 0,
				decodeMs * 1_000_000, steps);
		EvalSpeed.record(row,
				new Generator.Result("", new int[steps + 1], promptTokens, FinishReason.LENGTH, false, timings));
		return JSON.valueToTree(row);
	}

	@Test
	void totalsOverTheTimedRows() {
		JsonNode untimed = JSON.valueToTree(Map.of("promptTokens", 999));
		EvalSpeed speed = EvalSpeed.of(List.of(row(100, 500, 10, 1000, 10), untimed, row(300, 1500, 30, 3000, 50)));
		assertThat(speed.examples()).isEqualTo(2);
		assertThat(speed.decodeTokensPerSecond()).isCloseTo(60 / 4.0, within(1e-9));
		assertThat(speed.promptTokensPerSecond()).isCloseTo(400 / 2.0, within(1e-9));
		assertThat(speed.meanSelectionMs()).isCloseTo(20, within(1e-9));
		assertThat(speed.columns().strip()).isEqualTo("15.0      200.0");
	}

	@Test
	void nothingTimedPrintsDashes() {
		EvalSpeed speed = EvalSpeed.of(List.of(JSON.valueToTree(Map.of("promptTokens", 5))));
		assertThat(speed.examples()).isZero();
		assertThat(speed.decodeTokensPerSecond()).isNaN();
		assertThat(speed.columns().strip()).isEqualTo("-          -");
	}

}

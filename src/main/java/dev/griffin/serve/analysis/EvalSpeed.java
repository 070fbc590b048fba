package dev.griffin.serve.analysis;

import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;

import dev.griffin.serve.generation.Generator;

/**
 * How fast a configuration ran over an evaluation's examples, beside its quality: decode
 * tokens per second (every generated token after the first over the time spent decoding
 * them), prompt tokens per second (prefill, expert selection included) and the mean time
 * of expert selection. Totals over the examples, so long examples weigh more; the first
 * example of a run includes the engine's warm-up. One process, one example at a time, so
 * these are indications beside the quality columns, not a benchmark (that is
 * {@code bench}).
 *
 * @param examples examples timed (rows written before timings were recorded have none)
 */
public record EvalSpeed(int examples, double decodeTokensPerSecond, double promptTokensPerSecond,
		double meanSelectionMs) {

	/** Adds a generation's timings to an example's row. */
	static void record(Map<String, Object> row, Generator.Result result) {
		Generator.Timings timings = result.timings();
		row.put("decodeSteps", timings.decodeSteps());
		row.put("decodeSeconds", timings.decodeNanos() / 1e9);
		row.put("prefillSeconds", timings.prefillNanos() / 1e9);
		row.put("selectionSeconds", timings.selectionNanos() / 1e9);
	}

	/** The speed over the rows that carry timings ({@link #record}). */
	static EvalSpeed of(Iterable<JsonNode> rows) {
		int examples = 0;
		long steps = 0;
		double decodeSeconds = 0;
		long promptTokens = 0;
		double prefillSeconds = 0;
		double selectionSeconds = 0;
		for (JsonNode row : rows) {
			if (!row.has("decodeSeconds")) {
				continue;
			}
			examples++;
			steps += row.get("decodeSteps").asLong();
			decodeSeconds += row.get("decodeSeconds").asDouble();
			promptTokens += row.get("promptTokens").asLong();
			prefillSeconds += row.get("prefillSeconds").asDouble();
			selectionSeconds += row.get("selectionSeconds").asDouble();
		}
		return new EvalSpeed(examples, (decodeSeconds > 0) ? steps / decodeSeconds : Double.NaN,
				(prefillSeconds > 0) ? promptTokens / prefillSeconds : Double.NaN,
				(examples > 0) ? 1e3 * selectionSeconds / examples : Double.NaN);
	}

	/** The table's decode and prompt columns, "-" where nothing was timed. */
	public String columns() {
		return "%10s %10s".formatted(format(this.decodeTokensPerSecond), format(this.promptTokensPerSecond));
	}

	/** The table's header for {@link #columns}. */
	public static String header() {
		return "%10s %10s".formatted("decode t/s", "prompt t/s");
	}

	private static String format(double value) {
		return Double.isNaN(value) ? "-" : "%.1f".formatted(value);
	}

}

package dev.griffin.serve.generation;

import java.util.List;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class StopConditionTests {

	private static SamplingParams params(List<String> stops, List<Integer> stopTokens, boolean ignoreEos) {
		return new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0L, 16, stops, stopTokens, ignoreEos);
	}

	@Test
	void endTokensStopUnlessIgnoredAndExtraTokensAlwaysDo() {
		StopCondition stop = new StopCondition(params(List.of(), List.of(7), false), new int[] { 2 });
		assertThat(stop.isStopToken(2)).isTrue();
		assertThat(stop.isStopToken(7)).isTrue();
		assertThat(stop.isStopToken(3)).isFalse();
		StopCondition ignoring = new StopCondition(params(List.of(), List.of(7), true), new int[] { 2 });
		assertThat(ignoring.isStopToken(2)).isFalse();
		assertThat(ignoring.isStopToken(7)).isTrue();
	}

	@Test
	void theEarliestStopStringWins() {
		StopCondition stop = new StopCondition(params(List.of("END", "\n\n"), List.of(), false), new int[0]);
		assertThat(stop.stopStringIndex("one\n\ntwo END")).isEqualTo(3);
		assertThat(stop.stopStringIndex("one END\n\n")).isEqualTo(4);
		assertThat(stop.stopStringIndex("nothing here")).isEqualTo(-1);
	}

	@Test
	void holdBackIsWhatCouldStillBecomeAStopString() {
		assertThat(new StopCondition(params(List.of(), List.of(), false), new int[0]).holdBack()).isZero();
		assertThat(new StopCondition(params(List.of("x"), List.of(), false), new int[0]).holdBack()).isZero();
		assertThat(new StopCondition(params(List.of("ab", "Observation:"), List.of(), false), new int[0]).holdBack())
			.isEqualTo("Observation:".length() - 1);
	}

}

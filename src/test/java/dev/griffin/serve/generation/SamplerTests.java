package dev.griffin.serve.generation;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SamplerTests {

	private static SamplingParams params(double temperature, int topK, double topP, double minP, Long seed) {
		return new SamplingParams(temperature, topK, topP, minP, 1, 0, 0, seed, 16, List.of(), List.of(), false);
	}

	@Test
	void greedyTakesTheLargestLogit() {
		Sampler sampler = new Sampler(SamplingParams.greedy(4), 4, new int[0]);
		assertThat(sampler.sample(new float[] { 0.1f, 2f, -1f, 1.9f })).isEqualTo(1);
	}

	@Test
	void seedMakesSamplingReproducible() {
		float[] logits = new float[50];
		for (int i = 0; i < logits.length; i++) {
			logits[i] = (float) Math.sin(i);
		}
		int[] a = new int[20];
		int[] b = new int[20];
		Sampler first = new Sampler(params(1.0, 0, 1, 0, 42L), 50, new int[0]);
		Sampler second = new Sampler(params(1.0, 0, 1, 0, 42L), 50, new int[0]);
		for (int i = 0; i < 20; i++) {
			a[i] = first.sample(logits.clone());
			b[i] = second.sample(logits.clone());
		}
		assertThat(a).containsExactly(b);
		assertThat(new HashSet<>(java.util.Arrays.stream(a).boxed().toList())).hasSizeGreaterThan(1);
	}

	@Test
	void topKAndTopPAndMinPRestrictTheCandidates() {
		float[] logits = { 5f, 4f, 3f, 0f, -1f };
		Set<Integer> topK = new HashSet<>();
		Set<Integer> topP = new HashSet<>();
		Set<Integer> minP = new HashSet<>();
		Sampler k = new Sampler(params(1.0, 2, 1, 0, 1L), 5, new int[0]);
		Sampler p = new Sampler(params(1.0, 0, 0.5, 0, 2L), 5, new int[0]);
		Sampler m = new Sampler(params(1.0, 0, 1, 0.2, 3L), 5, new int[0]);
		for (int i = 0; i < 500; i++) {
			topK.add(k.sample(logits.clone()));
			topP.add(p.sample(logits.clone()));
			minP.add(m.sample(logits.clone()));
		}
		assertThat(topK).containsExactlyInAnyOrder(0, 1);
		// p(0) = 0.66 >= 0.5 alone
		assertThat(topP).containsExactly(0);
		// e^-1 = 0.37 and e^-2 = 0.14 of the top token: min_p 0.2 keeps tokens 0 and 1
		assertThat(minP).containsExactlyInAnyOrder(0, 1);
	}

	@Test
	void penaltiesDiscourageRepeats() {
		SamplingParams presence = new SamplingParams(0, 0, 1, 0, 1, 2, 0, 0L, 4, List.of(), List.of(), false);
		Sampler sampler = new Sampler(presence, 3, new int[0]);
		sampler.accept(0);
		assertThat(sampler.sample(new float[] { 1.5f, 0f, 0f })).isEqualTo(1);
		SamplingParams repetition = new SamplingParams(0, 0, 1, 0, 2, 0, 0, 0L, 4, List.of(), List.of(), false);
		Sampler fromPrompt = new Sampler(repetition, 3, new int[] { 0 });
		assertThat(fromPrompt.sample(new float[] { 1.5f, 1f, 0f })).isEqualTo(1);
		SamplingParams frequency = new SamplingParams(0, 0, 1, 0, 1, 0, 1, 0L, 4, List.of(), List.of(), false);
		Sampler counted = new Sampler(frequency, 2, new int[0]);
		counted.accept(0);
		counted.accept(0);
		assertThat(counted.sample(new float[] { 1.5f, 0f })).isEqualTo(1);
	}

	@Test
	void invalidParametersNameTheField() {
		assertThatThrownBy(() -> params(-1, 0, 1, 0, 0L)).hasMessageContaining("temperature");
		assertThatThrownBy(() -> params(1, 0, 0, 0, 0L)).hasMessageContaining("top_p");
		assertThatThrownBy(() -> params(1, -1, 1, 0, 0L)).hasMessageContaining("top_k");
		assertThatThrownBy(() -> params(1, 0, 1, 2, 0L)).hasMessageContaining("min_p");
	}

	@Test
	void nonFiniteLogitsAreHandledNotPropagated() {
		SamplingParams sampled = new SamplingParams(1.0, 0, 1, 0, 1, 0, 0, 7L, 4, List.of(), List.of(), false);
		// NaN never wins, greedy or sampled
		assertThat(new Sampler(SamplingParams.greedy(4), 3, new int[0]).sample(new float[] { Float.NaN, 1, 2 }))
			.isEqualTo(2);
		assertThat(new Sampler(sampled, 3, new int[0]).sample(new float[] { Float.NaN, Float.NaN, 0 })).isEqualTo(2);
		// +infinity is taken, among the infinite ones only
		Set<Integer> drawn = new HashSet<>();
		Sampler sampler = new Sampler(sampled, 4, new int[0]);
		for (int i = 0; i < 100; i++) {
			drawn.add(sampler.sample(new float[] { 3, Float.POSITIVE_INFINITY, 5, Float.POSITIVE_INFINITY }));
		}
		assertThat(drawn).containsExactlyInAnyOrder(1, 3);
		// nothing to sample from is an error, not token 0
		assertThatThrownBy(
				() -> new Sampler(sampled, 2, new int[0]).sample(new float[] { Float.NaN, Float.NEGATIVE_INFINITY }))
			.isInstanceOf(IllegalStateException.class);
	}

	@Test
	void theSmallestRepetitionPenaltyKeepsLogitsFinite() {
		SamplingParams params = new SamplingParams(1.5, 0, 1, 0, 0.01, 0, 0, 3L, 4, List.of(), List.of(), false);
		float[] logits = { 3e38f, -3e38f, 1 };
		int token = new Sampler(params, 3, new int[] { 0, 1 }).sample(logits);
		assertThat(token).isBetween(0, 2);
	}

	@Test
	void everyNumberMustBeFiniteAndInRangeAndNamesItsParameter() {
		for (double value : new double[] { Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, 1e-40,
				1e40 }) {
			assertThatThrownBy(() -> new SamplingParams(1, 0, 1, 0, value, 0, 0, null, 4, List.of(), List.of(), false))
				.isInstanceOfSatisfying(InvalidParameterException.class,
						(ex) -> assertThat(ex.parameter()).isEqualTo("repetition_penalty"));
		}
		for (double value : new double[] { Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, -1e-40,
				2.5 }) {
			assertThatThrownBy(() -> new SamplingParams(value, 0, 1, 0, 1, 0, 0, null, 4, List.of(), List.of(), false))
				.isInstanceOfSatisfying(InvalidParameterException.class,
						(ex) -> assertThat(ex.parameter()).isEqualTo("temperature"));
		}
		assertThatThrownBy(
				() -> new SamplingParams(1, 0, 1, 0, 1, 0, 0, null, 4, List.of("x".repeat(257)), List.of(), false))
			.isInstanceOfSatisfying(InvalidParameterException.class,
					(ex) -> assertThat(ex.parameter()).isEqualTo("stop"));
	}

}

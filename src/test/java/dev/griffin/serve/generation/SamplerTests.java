package dev.griffin.serve.generation;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

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

	/**
	 * The cuts' draw, written the plain way: every candidate sorted, then cut. The
	 * sampler sorts only the first candidates, enough to hold the cut, and must draw what
	 * this draws from the same random numbers.
	 */
	private static int sortedDraw(float[] logits, SamplingParams params, SplittableRandom random) {
		int n = logits.length;
		double max = Double.NEGATIVE_INFINITY;
		for (float logit : logits) {
			max = Math.max(max, logit);
		}
		double[] probabilities = new double[n];
		double sum = 0;
		for (int i = 0; i < n; i++) {
			probabilities[i] = Math.exp((logits[i] - max) / params.temperature());
			sum += probabilities[i];
		}
		List<Integer> order = new ArrayList<>();
		for (int i = 0; i < n; i++) {
			if (probabilities[i] >= 1e-12) {
				order.add(i);
			}
		}
		order.sort((a, b) -> (probabilities[a] != probabilities[b]) ? Double.compare(probabilities[b], probabilities[a])
				: Integer.compare(a, b));
		if (params.topK() > 0 && params.topK() < order.size()) {
			order = order.subList(0, params.topK());
		}
		int keep = order.size();
		double cumulative = 0;
		for (int i = 0; i < order.size(); i++) {
			double p = probabilities[order.get(i)];
			if (params.minP() > 0 && p < params.minP() * probabilities[order.get(0)]) {
				keep = i;
				break;
			}
			cumulative += p / sum;
			if (cumulative >= params.topP()) {
				keep = i + 1;
				break;
			}
		}
		keep = Math.max(1, keep);
		double total = 0;
		for (int i = 0; i < keep; i++) {
			total += probabilities[order.get(i)];
		}
		double u = random.nextDouble() * total;
		for (int i = 0; i < keep; i++) {
			u -= probabilities[order.get(i)];
			if (u <= 0) {
				return order.get(i);
			}
		}
		return order.get(keep - 1);
	}

	@Test
	void cutsDrawWhatSortingEveryCandidateDraws() {
		SplittableRandom logitsRandom = new SplittableRandom(5);
		double[][] settings = { { 1.0, 40, 1, 0 }, { 0.7, 0, 0.9, 0 }, { 1.3, 0, 0.95, 0 }, { 1.0, 0, 1, 0.05 },
				{ 0.8, 50, 0.8, 0.01 }, { 1.0, 0, 0.999999, 0 }, { 2.0, 1000, 1, 0 }, { 1.0, 0, 1, 1e-9 } };
		for (double[] setting : settings) {
			SamplingParams params = params(setting[0], (int) setting[1], setting[2], setting[3], 11L);
			Sampler sampler = new Sampler(params, 5000, new int[0]);
			SplittableRandom reference = new SplittableRandom(11L);
			for (int draw = 0; draw < 200; draw++) {
				// a peaked head over a long flat tail, as a language model's logits are
				float[] logits = new float[5000];
				for (int i = 0; i < logits.length; i++) {
					logits[i] = (float) (logitsRandom.nextGaussian() * ((i % 97 == 0) ? 4 : 1.5));
				}
				assertThat(sampler.sample(logits.clone())).as("settings %s, draw %d", Arrays.toString(setting), draw)
					.isEqualTo(sortedDraw(logits, params, reference));
			}
		}
	}

	/** Without a cut every candidate is drawn with its own probability. */
	@Test
	void withoutACutEachTokenIsDrawnWithItsProbability() {
		float[] logits = { 0f, (float) Math.log(2), (float) Math.log(3), (float) Math.log(4), -40f };
		Sampler sampler = new Sampler(params(1.0, 0, 1, 0, 3L), 5, new int[0]);
		int[] counts = new int[5];
		int draws = 100_000;
		for (int i = 0; i < draws; i++) {
			counts[sampler.sample(logits.clone())]++;
		}
		for (int token = 0; token < 4; token++) {
			double expected = (token + 1) / 10.0;
			// four standard deviations of a binomial share
			assertThat(Math.abs(counts[token] / (double) draws - expected)).as("token %d", token)
				.isLessThan(4 * Math.sqrt(expected * (1 - expected) / draws));
		}
		// e^-40 is below the candidates' 1e-12 of the most likely token
		assertThat(counts[4]).isZero();
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

	private static SamplingParams biased(double temperature, double repetition, Map<Integer, Float> bias) {
		return new SamplingParams(temperature, 0, 1, 0, repetition, 0, 0, 7L, 16, List.of(), List.of(), false, bias, 0);
	}

	@Test
	void aLogitBiasBansAndForcesTokens() {
		float[] logits = { 3f, 2f, 1f, 0f };
		assertThat(new Sampler(biased(0, 1, Map.of(0, -100f)), 4, new int[0]).sample(logits.clone()))
			.as("greedy, the best token banned")
			.isEqualTo(1);
		assertThat(new Sampler(biased(0, 1, Map.of(3, 3.5f)), 4, new int[0]).sample(logits.clone()))
			.as("greedy, a small bias that moves the best")
			.isEqualTo(3);
		Sampler forced = new Sampler(biased(1.5, 1, Map.of(2, 100f)), 4, new int[0]);
		Sampler banned = new Sampler(biased(1.5, 1, Map.of(0, -100f, 1, -100f)), 4, new int[0]);
		Set<Integer> forcedDraws = new HashSet<>();
		Set<Integer> bannedDraws = new HashSet<>();
		for (int i = 0; i < 300; i++) {
			forcedDraws.add(forced.sample(logits.clone()));
			bannedDraws.add(banned.sample(logits.clone()));
		}
		assertThat(forcedDraws).containsExactly(2);
		assertThat(bannedDraws).containsExactlyInAnyOrder(2, 3);
	}

	@Test
	void theBiasComesBeforeThePenalties() {
		// token 1 seen in the prompt: biased from -1 to 1, then divided by 2 (a positive
		// logit); penalised first, it would be -2 + 2 = 0 and lose to token 0's 0.6
		float[] logits = { 0.6f, -1f };
		assertThat(new Sampler(biased(0, 2, Map.of(1, 2f)), 2, new int[] { 1 }).sample(logits)).isEqualTo(0);
		assertThat(logits[1]).isEqualTo(0.5f);
		float[] more = { 0.4f, -1f };
		assertThat(new Sampler(biased(0, 2, Map.of(1, 2f)), 2, new int[] { 1 }).sample(more)).isEqualTo(1);
	}

	@Test
	void aLogitBiasOutsideTheVocabularyIsRefused() {
		assertThatThrownBy(() -> new Sampler(biased(0, 1, Map.of(4, 1f)), 4, new int[0]))
			.isInstanceOf(IllegalArgumentException.class);
		assertThatThrownBy(() -> biased(0, 1, Map.of(1, Float.NaN))).isInstanceOf(InvalidParameterException.class);
		assertThatThrownBy(() -> biased(0, 1, Map.of(-1, 1f))).isInstanceOf(InvalidParameterException.class);
	}

	/**
	 * The draw's weights come from the native kernels on the build machine, and from
	 * Math.exp where those cannot run: both forms give the same weights within a float's
	 * rounding, the same zeros below the candidates' floor, and the same sum.
	 */
	@Test
	void theVectorWeightsAreMathExpsWithinAFloatsRounding() {
		assertThat(Sampler.NATIVE).as("the native kernels run on the build machine").isTrue();
		SplittableRandom random = new SplittableRandom(17);
		for (int n : new int[] { 1, 15, 16, 17, 49_152, 151_936 }) {
			for (float scale : new float[] { 0.5f, 1f, 1 / 0.7f, 50f }) {
				float[] logits = new float[n];
				float max = Float.NEGATIVE_INFINITY;
				for (int i = 0; i < n; i++) {
					logits[i] = (i % 1000 == 999) ? Float.NEGATIVE_INFINITY : (float) (random.nextGaussian() * 5);
					max = Math.max(max, logits[i]);
				}
				float[] vector = new float[n];
				float[] plain = new float[n];
				double vectorSum = Sampler.weights(logits, max, scale, vector, true);
				double plainSum = Sampler.weights(logits, max, scale, plain, false);
				for (int i = 0; i < n; i++) {
					if (plain[i] == 0) {
						assertThat(vector[i]).as("n %d, scale %s, token %d", n, scale, i).isZero();
					}
					else {
						assertThat((double) vector[i]).as("n %d, scale %s, token %d", n, scale, i)
							.isCloseTo(plain[i], within(3e-7 * plain[i]));
					}
				}
				assertThat(vectorSum).isCloseTo(plainSum, within(1e-6 * plainSum));
				assertThat(plainSum).as("the largest logit's weight is 1").isGreaterThanOrEqualTo(1);
			}
		}
	}

	/**
	 * The alternatives of top_logprobs: what picking the largest unused value k times
	 * picks.
	 */
	@Test
	void theLargestValuesComeInOrderWithTheLowerIdFirstAmongEquals() {
		SplittableRandom random = new SplittableRandom(23);
		for (int trial = 0; trial < 200; trial++) {
			int n = 1 + random.nextInt(300);
			float[] values = new float[n];
			for (int i = 0; i < n; i++) {
				// few distinct values, so that ties are common; some NaN and infinities
				int kind = random.nextInt(20);
				values[i] = (kind == 0) ? Float.NaN : (kind == 1) ? Float.NEGATIVE_INFINITY
						: (kind == 2) ? Float.POSITIVE_INFINITY : random.nextInt(12);
			}
			int k = 1 + random.nextInt(25);
			List<Integer> expected = new ArrayList<>();
			boolean[] used = new boolean[n];
			for (int pick = 0; pick < k; pick++) {
				int best = -1;
				for (int i = 0; i < n; i++) {
					if (!used[i] && !Float.isNaN(values[i]) && (best < 0 || values[i] > values[best])) {
						best = i;
					}
				}
				if (best < 0) {
					break;
				}
				used[best] = true;
				expected.add(best);
			}
			assertThat(Sampler.largest(values, k)).as("trial %d", trial)
				.containsExactly(expected.stream().mapToInt(Integer::intValue).toArray());
		}
		assertThat(Sampler.largest(new float[] { 1, 2 }, 0)).isEmpty();
	}

	@Test
	void logSumExpWithTheKernelIsThePlainOneWithinAFloatsRounding() {
		SplittableRandom random = new SplittableRandom(31);
		for (int n : new int[] { 1, 17, 49_152 }) {
			float[] logits = new float[n];
			for (int i = 0; i < n; i++) {
				logits[i] = (float) (random.nextGaussian() * 6);
			}
			assertThat(Sampler.logSumExp(logits, new float[n])).as("n %d", n)
				.isCloseTo(Sampler.logSumExp(logits), within(1e-5));
		}
		float[] odd = { 1, Float.NaN };
		assertThat(Sampler.logSumExp(odd, new float[2])).isNaN();
		// the plain path's answer for an infinite logit, NaN, as before
		float[] infinite = { 1, Float.POSITIVE_INFINITY };
		assertThat(Sampler.logSumExp(infinite)).isNaN();
		assertThat(Sampler.logSumExp(infinite, new float[2])).isNaN();
	}

}

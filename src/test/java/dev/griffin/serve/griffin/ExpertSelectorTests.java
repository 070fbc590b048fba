package dev.griffin.serve.griffin;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import java.util.SplittableRandom;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The fast selector against the naive oracle, and the selection methods' contracts. */
class ExpertSelectorTests {

	private static float[][] activations(int tokens, int neurons, long seed) {
		Random random = new Random(seed);
		float[][] z = new float[tokens][neurons];
		for (float[] row : z) {
			for (int j = 0; j < neurons; j++) {
				// heavy-tailed, as SiLU-gated activations are
				row[j] = (float) (random.nextGaussian() * Math.exp(random.nextGaussian()));
			}
		}
		return z;
	}

	@Test
	void fastStatisticMatchesTheNaiveOracle() {
		float[][] z = activations(37, 300, 1);
		double[] naive = ReferenceExpertSelector.sumOfSquares(z);
		try (NDManager manager = NDManager.newBaseManager()) {
			NDArray array = manager.create(z);
			double[] fast = ExpertSelector.sumOfSquares(array);
			for (int j = 0; j < naive.length; j++) {
				assertThat(fast[j]).isCloseTo(naive[j], org.assertj.core.data.Percentage.withPercentage(1e-4));
			}
			assertThat(ExpertSelector.select(fast, 150, SelectionMethod.TOPK, null))
				.containsExactly(ReferenceExpertSelector.selectTopK(z, 150));
			// s^2 is additive over tokens: chunks sum to the whole
			double[] first = ExpertSelector.sumOfSquares(manager.create(Arrays.copyOfRange(z, 0, 7)));
			double[] rest = ExpertSelector.sumOfSquares(manager.create(Arrays.copyOfRange(z, 7, 37)));
			for (int j = 0; j < naive.length; j++) {
				assertThat(first[j] + rest[j]).isCloseTo(fast[j], org.assertj.core.data.Offset.offset(1e-9));
			}
			// each normalised token contributes exactly 1 in total
			assertThat(Arrays.stream(fast).sum()).isCloseTo(37.0, org.assertj.core.data.Offset.offset(1e-4));
		}
	}

	@Test
	void oneTokenStatisticIsThatTokensSquaredShare() {
		try (NDManager manager = NDManager.newBaseManager()) {
			double[] s2 = ExpertSelector.sumOfSquares(manager.create(new float[] { 3, 0, -4 }, new Shape(1, 3)));
			assertThat(s2[0]).isCloseTo(9 / 25.0, org.assertj.core.data.Offset.offset(1e-7));
			assertThat(s2[1]).isZero();
			assertThat(s2[2]).isCloseTo(16 / 25.0, org.assertj.core.data.Offset.offset(1e-7));
		}
	}

	@Test
	void selectionMethodsKeepTheirContracts() {
		double[] s2 = ReferenceExpertSelector.sumOfSquares(activations(20, 64, 2));
		int[] top = ExpertSelector.select(s2, 16, SelectionMethod.TOPK, null);
		for (SelectionMethod method : SelectionMethod.values()) {
			int[] a = ExpertSelector.select(s2, 16, method, new SplittableRandom(7));
			int[] b = ExpertSelector.select(s2, 16, method, new SplittableRandom(7));
			assertThat(a).as(method.wireName()).hasSize(16).doesNotHaveDuplicates().isSorted().containsExactly(b);
			assertThat(Arrays.stream(a).allMatch((i) -> i >= 0 && i < 64)).isTrue();
		}
		int[] half = ExpertSelector.top(s2, 8);
		int[] mixed = ExpertSelector.select(s2, 16, SelectionMethod.TOPK_SAMPLE, new SplittableRandom(3));
		assertThat(mixed).contains(half);
		Set<Integer> randomUnion = new HashSet<>();
		for (int seed = 0; seed < 20; seed++) {
			Arrays.stream(ExpertSelector.select(s2, 16, SelectionMethod.RANDOM, new SplittableRandom(seed)))
				.forEach(randomUnion::add);
		}
		assertThat(randomUnion.size()).isGreaterThan(40);
		assertThat(ExpertSelector.select(s2, 0, SelectionMethod.TOPK, null)).isEmpty();
		assertThat(ExpertSelector.select(s2, 64, SelectionMethod.TOPK, null)).hasSize(64);
		assertThat(top).hasSize(16);
		assertThatThrownBy(() -> ExpertSelector.select(s2, 65, SelectionMethod.TOPK, null))
			.isInstanceOf(IllegalArgumentException.class);
	}

	@Test
	void topAndLargestOrderByValueDescendingWithTiesToTheLowerIndex() {
		SplittableRandom random = new SplittableRandom(11);
		double[] specials = { 0.0, -0.0, Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY,
				-Double.MAX_VALUE, Double.MIN_VALUE, 1.0, 1.0 };
		for (int trial = 0; trial < 200; trial++) {
			int n = 1 + random.nextInt(300);
			double[] values = new double[n];
			for (int i = 0; i < n; i++) {
				int kind = random.nextInt(4);
				// few distinct values: many ties
				values[i] = (kind == 0) ? specials[random.nextInt(specials.length)]
						: (kind == 1) ? random.nextInt(5) : random.nextDouble();
			}
			Integer[] expected = new Integer[n];
			for (int i = 0; i < n; i++) {
				expected[i] = i;
			}
			Arrays.sort(expected, (a, b) -> {
				int byValue = Double.compare(values[b], values[a]);
				return (byValue != 0) ? byValue : Integer.compare(a, b);
			});
			int k = random.nextInt(n + 1);
			int[] picked = Arrays.stream(expected, 0, k).mapToInt(Integer::intValue).toArray();
			assertThat(ExpertSelector.top(values, k)).as("n %d, k %d", n, k).containsExactly(picked);
			Arrays.sort(picked);
			assertThat(ExpertSelector.largest(values, k)).as("n %d, k %d", n, k).containsExactly(picked);
		}
		assertThat(ExpertSelector.top(new double[] { 2, 5, 5, 1, 5 }, 4)).containsExactly(1, 2, 4, 0);
		assertThat(ExpertSelector.top(new double[] { 2, 5, 5, 1, 5 }, 2)).containsExactly(1, 2);
		assertThat(ExpertSelector.largest(new double[] { 2, 5, 5, 1, 5 }, 2)).containsExactly(1, 2);
		assertThat(ExpertSelector.largest(new double[] { 5, 2, 5, 1, 5 }, 4)).containsExactly(0, 1, 2, 4);
		assertThatThrownBy(() -> ExpertSelector.top(new double[3], 4)).isInstanceOf(IllegalArgumentException.class);
		assertThatThrownBy(() -> ExpertSelector.largest(new double[3], -1))
			.isInstanceOf(IllegalArgumentException.class);
	}

	@Test
	void densityScheduleAndMethodParsing() {
		DensitySchedule schedule = DensitySchedule.uniform(0.5, 4);
		assertThat(schedule.experts(0, 1536)).isEqualTo(768);
		assertThat(new DensitySchedule(new double[] { 1, 0.5, 0.25, 0 }).experts(2, 10)).isEqualTo(2);
		assertThatThrownBy(() -> DensitySchedule.uniform(1.5, 4)).hasMessageContaining("[0, 1]");
		assertThatThrownBy(() -> DensitySchedule.uniform(Double.NaN, 4)).hasMessageContaining("[0, 1]");
		assertThatThrownBy(() -> new GriffinSettings(-0.1, SelectionMethod.TOPK)).hasMessageContaining("[0, 1]");
		assertThat(SelectionMethod.parse("topk-sample")).isEqualTo(SelectionMethod.TOPK_SAMPLE);
		assertThatThrownBy(() -> SelectionMethod.parse("best")).hasMessageContaining("topk");
	}

	/**
	 * Density 1 keeps every neuron whatever the method, so it is the dense model (run,
	 * cached and reported as dense), and selects nothing at random.
	 */
	@Test
	void densityOneIsTheDenseModelForEveryMethod() {
		for (SelectionMethod method : SelectionMethod.values()) {
			assertThat(new GriffinSettings(1.0, method).isDense()).as(method.wireName()).isTrue();
			assertThat(new GriffinSettings(1.0, method).isRandomized()).as(method.wireName()).isFalse();
			assertThat(new GriffinSettings(0.75, method).isDense()).as(method.wireName()).isFalse();
		}
		assertThat(new GriffinSettings(0.75, SelectionMethod.SAMPLE).isRandomized()).isTrue();
	}

}

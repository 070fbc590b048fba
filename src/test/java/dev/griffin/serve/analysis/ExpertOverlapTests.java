package dev.griffin.serve.analysis;

import java.util.ArrayList;
import java.util.List;

import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.GriffinTransform;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The union of several prompts' experts: exact on sets whose answer is known, and taken
 * from what a GRIFFIN variant's prompts select.
 */
class ExpertOverlapTests {

	@Test
	void identicalSetsCoverTheirDensityAndDisjointOnesAddUp() {
		// 4 prompts, 2 layers, F = 8, 2 experts each: layer 0 the same set for all,
		// layer 1 disjoint sets
		int[][][] experts = new int[4][][];
		for (int p = 0; p < 4; p++) {
			experts[p] = new int[][] { { 1, 5 }, { 2 * p, 2 * p + 1 } };
		}
		List<ExpertOverlap.Row> rows = ExpertOverlap.measure(experts, 8, List.of(1, 2, 4), 50, 7);
		assertThat(rows).extracting(ExpertOverlap.Row::batch).containsExactly(1, 2, 4);
		for (ExpertOverlap.Row row : rows) {
			assertThat(row.perLayer()[0]).as("identical sets, batch %d", row.batch()).isEqualTo(0.25);
			assertThat(row.perLayer()[1]).as("disjoint sets, batch %d", row.batch()).isEqualTo(0.25 * row.batch());
			assertThat(row.minLayer()).isEqualTo(0.25);
			assertThat(row.maxLayer()).isEqualTo(0.25 * row.batch());
			assertThat(row.independent()).isCloseTo(1 - Math.pow(0.75, row.batch()),
					org.assertj.core.data.Offset.offset(1e-12));
		}
		assertThatThrownBy(() -> ExpertOverlap.measure(experts, 8, List.of(5), 10, 1))
			.isInstanceOf(IllegalArgumentException.class);
	}

	@Test
	void readsTheExpertsAGriffinVariantSelects() {
		try (NDManager manager = NDManager.newBaseManager()) {
			CausalLm dense = Fixtures.tinyModel("tiny-llama", ModelOptions.CPU_FLOAT32, manager);
			int layers = dense.config().numberOfLayers();
			int neurons = dense.config().intermediateSize();
			CausalLm half = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.TOPK);
			int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
			List<int[]> prompts = new ArrayList<>();
			prompts.add(prompt);
			prompts.add(new int[] { prompt[2], prompt[0], prompt[1] });
			int[][][] experts = ExpertOverlap.experts(half, prompts, (done) -> {
			});
			assertThat(experts).hasDimensions(2, layers);
			for (int[][] perPrompt : experts) {
				for (int[] layer : perPrompt) {
					assertThat(layer).hasSize(neurons / 2).isSorted();
				}
			}
			ExpertOverlap.Row one = ExpertOverlap.measure(experts, neurons, List.of(1), 10, 1).get(0);
			assertThat(one.union()).isCloseTo(0.5, org.assertj.core.data.Offset.offset(1e-12));
			ExpertOverlap.Row two = ExpertOverlap.measure(experts, neurons, List.of(2), 10, 1).get(0);
			assertThat(two.union()).isBetween(0.5, 1.0);
			dense.close();
		}
	}

}

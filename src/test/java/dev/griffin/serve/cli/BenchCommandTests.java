package dev.griffin.serve.cli;

import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.weights.Checkpoint;
import dev.griffin.serve.weights.Checkpoints;
import dev.griffin.serve.weights.ModelBuilder;

import static org.assertj.core.api.Assertions.assertThat;

class BenchCommandTests {

	@Test
	void aBatchedStepReadsTheSharedWeightsOnceAndTheFewerOfEachSequencesExpertsAndTheDenseBlocks() {
		try (NDManager manager = NDManager.newBaseManager();
				Checkpoint checkpoint = Checkpoints.open(Fixtures.path("tiny-llama"))) {
			CausalLm dense = ModelBuilder.build(checkpoint, ModelOptions.CPU_FLOAT32, manager, (layers) -> {
			});
			ModelConfig c = dense.config();
			long all = dense.denseWeightBytesPerToken();
			long feedForward = (long) c.numberOfLayers() * 3 * c.hiddenSize() * c.intermediateSize() * 4;
			long experts = (long) c.numberOfLayers() * 3 * c.hiddenSize() * (c.intermediateSize() / 2) * 4;
			assertThat(BenchCommand.batchStepBytes(dense, 1.0, 1)).isEqualTo(all);
			assertThat(BenchCommand.batchStepBytes(dense, 1.0, 16)).isEqualTo(all);
			assertThat(BenchCommand.batchStepBytes(dense, 0.5, 1)).isEqualTo(BenchCommand.bytesPerToken(dense, 0.5))
				.isEqualTo(all - feedForward + experts);
			long quarter = (long) c.numberOfLayers() * 3 * c.hiddenSize() * (c.intermediateSize() / 4) * 4;
			assertThat(c.intermediateSize() % 4).isZero();
			// two sequences' quarters are fewer neurons than a block: each reads its own
			assertThat(BenchCommand.batchStepBytes(dense, 0.25, 2)).isEqualTo(all - feedForward + 2 * quarter);
			// four halves are more: the dense blocks once, masked per row
			assertThat(BenchCommand.batchStepBytes(dense, 0.5, 4)).isEqualTo(all);
			assertThat(BenchCommand.batchStepBytes(dense, 0.5, 2)).isEqualTo(all);
		}
	}

}

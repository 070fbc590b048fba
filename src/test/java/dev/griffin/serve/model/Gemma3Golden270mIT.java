package dev.griffin.serve.model;

import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.weights.CheckpointException;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Gemma 3 270M (scripts/fetch-model gemma3-270m; Q4_K_M, mostly Q5_0, Q4_K, Q6_K and Q8_0
 * tensors) against transformers loading the same GGUF file in float32
 * ({@link NamedModelGoldenBase}): token ids of the hard strings from the file's
 * SentencePiece vocabulary, no chat template (the base model's file has none), dense
 * greedy continuations of 32 tokens on five prompts (after Gemma's beginning-of-sequence
 * token), GRIFFIN 0.5's experts (at least 99% of the reference's in every layer) and its
 * greedy continuations; and what this engine reads of Gemma 3's layout.
 */
class Gemma3Golden270mIT extends NamedModelGoldenBase {

	private static final String NAME = "gemma3-270m";

	Gemma3Golden270mIT() {
		super(NAME, "<eos>", "<end_of_turn>");
	}

	@Test
	void readsGemma3sLayout() {
		ModelConfig config = dense().config();
		assertThat(config.architecture()).isEqualTo(Architecture.GEMMA3);
		assertThat(config.numberOfLayers()).isEqualTo(18);
		assertThat(config.headDimension()).isEqualTo(256);
		assertThat(config.numberOfKeyValueHeads()).isEqualTo(1);
		assertThat(config.slidingWindow()).isEqualTo(512);
		// every sixth layer global, the others local
		for (int layer = 0; layer < 18; layer++) {
			assertThat(config.windowed(layer)).as("layer %d", layer).isEqualTo(layer % 6 != 5);
		}
		assertThat(config.ropeTheta()).isEqualTo(1_000_000);
		assertThat(config.windowedRopeTheta()).isEqualTo(10_000);
		assertThat(config.hiddenActivation()).isEqualTo(HiddenActivation.GELU_TANH);
	}

	/**
	 * Its residual stream outgrows float16, so loading it so is refused with the reason.
	 */
	@Test
	void float16IsRefusedWithTheReason() {
		assertThatThrownBy(() -> LoadedModel.load(Fixtures.namedModel(NAME), "none",
				new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu"), (layers) -> {
				}))
			.isInstanceOf(CheckpointException.class)
			.hasMessageContaining("residual stream outgrows float16")
			.hasMessageContaining("load it in float32");
	}

}

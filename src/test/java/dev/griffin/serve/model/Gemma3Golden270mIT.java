package dev.griffin.serve.model;

import java.nio.file.Path;
import java.util.Arrays;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.tokenizer.Tokenizer;
import dev.griffin.serve.weights.CheckpointException;
import dev.griffin.serve.weights.GgufCheckpoint;
import dev.griffin.serve.weights.ModelBuilder;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Gemma 3 270M (scripts/fetch-model gemma3-270m; Q4_K_M, mostly Q5_0, Q4_K, Q6_K and Q8_0
 * tensors) against transformers loading the same GGUF file in float32
 * (fixtures/gemma3-270m/reference.json): token ids of the hard strings from the file's
 * SentencePiece vocabulary, dense greedy continuations of 32 tokens on five prompts
 * (after Gemma's beginning-of-sequence token), GRIFFIN 0.5's experts (at least 99% of the
 * reference's in every layer) and its greedy continuations.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class Gemma3Golden270mIT {

	private static final String NAME = "gemma3-270m";

	private NDManager manager;

	private GgufCheckpoint checkpoint;

	private CausalLm dense;

	private JsonNode reference;

	private Tokenizer tokenizer;

	@BeforeAll
	void load() {
		this.reference = Fixtures.json(NAME + "/reference.json");
		Path file = Fixtures.namedModel(NAME);
		assertThat(file.getFileName()).hasToString(this.reference.get("model").asText());
		this.manager = NDManager.newBaseManager();
		this.checkpoint = new GgufCheckpoint(file);
		this.dense = ModelBuilder.build(this.checkpoint, ModelOptions.CPU_FLOAT32.withPackWeights(false), this.manager,
				(layers) -> {
				});
		this.tokenizer = Tokenizer.fromGguf(this.checkpoint.file());
	}

	@AfterAll
	void close() {
		if (this.tokenizer != null) {
			this.tokenizer.close();
		}
		if (this.dense != null) {
			this.dense.close();
		}
		if (this.checkpoint != null) {
			this.checkpoint.close();
		}
		if (this.manager != null) {
			this.manager.close();
		}
	}

	@Test
	void readsGemma3sLayout() {
		ModelConfig config = this.dense.config();
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
	 * The file's SentencePiece vocabulary cuts the hard strings into transformers' ids
	 * (after the beginning-of-sequence token Gemma adds), and decodes them back.
	 */
	@Test
	void tokenIdsMatchHuggingFace() {
		JsonNode strings = this.reference.get("strings");
		assertThat(strings.size()).isGreaterThanOrEqualTo(40);
		for (JsonNode string : strings) {
			String text = string.get("text").asText();
			int[] ids = this.tokenizer.encode(text);
			assertThat(ids[0]).isEqualTo(2);
			assertThat(Arrays.copyOfRange(ids, 1, ids.length)).as("ids of %s", string.get("text"))
				.containsExactly(Fixtures.ints(string.get("ids")));
			assertThat(this.tokenizer.decode(ids, true)).as("round trip").isEqualTo(text);
		}
		assertThat(this.tokenizer.chatTemplate()).as("the base model's file has none").isNull();
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

	/** The plain pool form, and the layer form calibration may pick. */
	@ParameterizedTest
	@EnumSource(value = Kernels.Decode.class, names = { "POOL", "LAYER" })
	void denseGreedyMatchesHuggingFace(Kernels.Decode decode) {
		assertThat(this.reference.get("cases")).hasSize(5);
		SmolLm2GoldenIT.assertDenseGreedy(NAME + " dense", SmolLm2GoldenIT.with(this.dense, decode), this.tokenizer,
				this.reference);
	}

	@Test
	void griffinMatchesReferenceGriffin() {
		SmolLm2GoldenIT.assertGriffinGreedy(NAME, SmolLm2GoldenIT.with(this.dense, Kernels.Decode.POOL),
				this.reference);
	}

}

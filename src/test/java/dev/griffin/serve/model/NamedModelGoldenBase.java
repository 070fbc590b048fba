package dev.griffin.serve.model;

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
import dev.griffin.serve.tokenizer.Tokenizer;
import dev.griffin.serve.weights.GgufCheckpoint;
import dev.griffin.serve.weights.ModelBuilder;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A named model (scripts/fetch-model NAME) against Hugging Face transformers loading the
 * same GGUF file in float32 (fixtures/NAME/reference.json, from
 * tools/reference/make_fixtures.py): token ids, chat template, dense and GRIFFIN greedy
 * continuations and GRIFFIN's experts, as {@link SmolLm2GoldenIT} checks the default
 * model. Float32 without packed copies, so that the larger model fits beside the other
 * tests.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class NamedModelGoldenBase {

	private final String name;

	private final String[] endTexts;

	private NDManager manager;

	private GgufCheckpoint checkpoint;

	private CausalLm dense;

	private Tokenizer tokenizer;

	private JsonNode reference;

	/**
	 * @param endTexts the texts of the tokens that end the model's generation, in the
	 * order the checkpoint lists them
	 */
	NamedModelGoldenBase(String name, String... endTexts) {
		this.name = name;
		this.endTexts = endTexts;
	}

	@BeforeAll
	void load() {
		this.reference = Fixtures.json(this.name + "/reference.json");
		java.nio.file.Path file = Fixtures.namedModel(this.name);
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

	/**
	 * Generation ends on each token the model ends a turn or a text with, not only on the
	 * one the file names (a reply that ends on another would run on into a new text).
	 */
	@Test
	void endsOnEachOfItsEndTokens() {
		int[] ids = this.checkpoint.config().eosTokenIds();
		assertThat(Arrays.stream(ids).mapToObj((id) -> this.tokenizer.decode(new int[] { id }, false)).toList())
			.containsExactly(this.endTexts);
		// each is a control token: skipped when special tokens are
		assertThat(this.tokenizer.decode(ids, true)).isEmpty();
	}

	/**
	 * The hard strings' ids, after the beginning-of-sequence token where the model adds
	 * one (the reference's are without it), and back to the text.
	 */
	@Test
	void tokenIdsMatchHuggingFace() {
		JsonNode strings = this.reference.get("strings");
		assertThat(strings.size()).isGreaterThanOrEqualTo(40);
		int bos = this.tokenizer.encode("").length;
		for (JsonNode string : strings) {
			String text = string.get("text").asText();
			int[] ids = this.tokenizer.encode(text);
			int[] content = Arrays.copyOfRange(ids, bos, ids.length);
			assertThat(content).as("ids of %s", string.get("text")).containsExactly(Fixtures.ints(string.get("ids")));
			assertThat(this.tokenizer.decode(content, false)).as("round trip").isEqualTo(text);
		}
	}

	/** The renderings of the model's chat template, or none for a model without one. */
	@Test
	void chatTemplateMatchesHuggingFace() {
		JsonNode chats = this.reference.get("chats");
		if (chats.isEmpty()) {
			assertThat(this.tokenizer.chatTemplate()).as("transformers found no template either").isNull();
			return;
		}
		SmolLm2GoldenIT.assertChatsMatch(this.tokenizer, chats);
	}

	/** The dense model, float32, plain weights. */
	CausalLm dense() {
		return this.dense;
	}

	/** The model's tokenizer. */
	Tokenizer tokenizer() {
		return this.tokenizer;
	}

	/** The plain pool form, and the layer form calibration picks on these models. */
	@ParameterizedTest
	@EnumSource(value = Kernels.Decode.class, names = { "POOL", "LAYER" })
	void denseGreedyMatchesHuggingFace(Kernels.Decode decode) {
		SmolLm2GoldenIT.assertDenseGreedy(this.name + " dense", SmolLm2GoldenIT.with(this.dense, decode),
				this.tokenizer, this.reference);
	}

	@Test
	void griffinMatchesReferenceGriffin() {
		SmolLm2GoldenIT.assertGriffinGreedy(this.name, SmolLm2GoldenIT.with(this.dense, Kernels.Decode.POOL),
				this.reference);
	}

}

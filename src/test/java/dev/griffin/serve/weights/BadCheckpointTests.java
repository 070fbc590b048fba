package dev.griffin.serve.weights;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.model.HiddenActivation;
import dev.griffin.serve.model.ModelConfig;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Broken checkpoints fail at load with a message that names the file, the tensor and what
 * was expected: never a crash, never a silently wrong model.
 */
class BadCheckpointTests {

	private static final ObjectMapper JSON = new ObjectMapper();

	@TempDir
	Path dir;

	private Path copyOfTinyLlama() throws IOException {
		return copyOf("tiny-mistral");
	}

	private Path copyOf(String fixture) throws IOException {
		Path source = Fixtures.path(fixture);
		Path target = this.dir.resolve("model");
		Files.createDirectories(target);
		try (var files = Files.list(source)) {
			for (Path file : files.toList()) {
				Files.copy(file, target.resolve(file.getFileName()));
			}
		}
		return target;
	}

	private static void loadAllTensors(Path path) {
		try (Checkpoint checkpoint = Checkpoints.open(path)) {
			checkpoint.embedding().readAll().data();
			checkpoint.finalNorm().readAll();
			TensorRows head = checkpoint.lmHead();
			if (head != null) {
				head.readAll();
			}
			for (int i = 0; i < checkpoint.config().numberOfLayers(); i++) {
				LayerTensors l = checkpoint.layer(i);
				java.util.stream.Stream
					.of(l.attentionNorm(), l.query(), l.key(), l.value(), l.queryBias(), l.keyBias(), l.valueBias(),
							l.output(), l.ffnNorm(), l.gate(), l.up(), l.down())
					.filter(java.util.Objects::nonNull)
					.forEach(TensorRows::readAll);
			}
		}
	}

	@Test
	void truncatedSafetensors() throws IOException {
		Path model = copyOfTinyLlama();
		Path file = model.resolve("model.safetensors");
		byte[] bytes = Files.readAllBytes(file);
		Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length - 1000));
		assertThatThrownBy(() -> loadAllTensors(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("model.safetensors is truncated")
			.hasMessageContaining("tensor '");
	}

	@Test
	void truncatedGguf() throws IOException {
		Path file = this.dir.resolve("types.gguf");
		byte[] bytes = Files.readAllBytes(Fixtures.path("gguf-dequant/types.gguf"));
		Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length - 100));
		assertThatThrownBy(() -> GgufFile.open(file)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("types.gguf is truncated")
			.hasMessageContaining("tensor 't_q5_1'");
	}

	@Test
	void wrongShape() throws IOException {
		Path model = copyOfTinyLlama();
		ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
		config.put("intermediate_size", 128);
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		assertThatThrownBy(() -> loadAllTensors(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining(
					"tensor 'model.layers.0.mlp.gate_proj.weight' has shape [160, 64], expected [128, 64]")
			.hasMessageContaining("model.safetensors");
	}

	@Test
	void missingTensor() throws IOException {
		Path model = copyOfTinyLlama();
		ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
		config.put("num_hidden_layers", 3);
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		assertThatThrownBy(() -> loadAllTensors(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("missing tensor 'model.layers.2.input_layernorm.weight' (expected shape [64])");
	}

	@Test
	void unknownArchitecture() throws IOException {
		Path model = copyOfTinyLlama();
		ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
		config.put("model_type", "gpt_neox");
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		assertThatThrownBy(() -> Checkpoints.open(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("config.json")
			.hasMessageContaining(
					"architecture 'gpt_neox' is not supported (supported: [llama, mistral, qwen2, gemma, gemma2, gemma3_text, opt])");
	}

	/**
	 * Gemma 3's multimodal checkpoints: the language model's config is text_config, which
	 * the published files write sparsely (transformers' defaults fill the rest), and its
	 * tensors live under language_model.*.
	 */
	@Test
	void gemma3sMultimodalCheckpointIsReadForItsLanguageModel() throws IOException {
		Path model = copyOf("tiny-gemma3-vision");
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			ModelConfig c = checkpoint.config();
			assertThat(c.architecture()).isEqualTo(dev.griffin.serve.model.Architecture.GEMMA3);
			assertThat(c.vocabularySize()).isEqualTo(300);
			assertThat(c.windowedLayers()).containsExactly(true, false);
			assertThat(c.ropeScaling().type()).isEqualTo(dev.griffin.serve.model.RopeScaling.Type.LINEAR);
			assertThat(c.ropeScaling().factor()).isEqualTo(8.0);
			assertThat(checkpoint.layer(1).queryNorm().readAll().data()).hasSize(32);
		}
		Path file = model.resolve("config.json");
		ObjectNode config = (ObjectNode) JSON.readTree(file.toFile());
		((ObjectNode) config.get("text_config")).remove(List.of("num_attention_heads", "num_key_value_heads",
				"head_dim", "vocab_size", "query_pre_attn_scalar"));
		JSON.writeValue(file.toFile(), config);
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			ModelConfig c = checkpoint.config();
			assertThat(c.numberOfAttentionHeads()).isEqualTo(8);
			assertThat(c.numberOfKeyValueHeads()).isEqualTo(4);
			assertThat(c.headDimension()).isEqualTo(256);
			assertThat(c.vocabularySize()).isEqualTo(262208);
			assertThat(c.attentionScale()).isEqualTo((float) Math.pow(256, -0.5));
		}
		config.remove("text_config");
		JSON.writeValue(file.toFile(), config);
		assertThatThrownBy(() -> Checkpoints.open(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("a gemma3 (multimodal) config without text_config");
	}

	/** The OPT variants transformers can build and this engine does not compute. */
	@Test
	void unsupportedOptVariants() throws IOException {
		Path model = copyOf("tiny-opt");
		Path file = model.resolve("config.json");
		ObjectNode original = (ObjectNode) JSON.readTree(file.toFile());
		for (String[] change : new String[][] { { "layer_norm_elementwise_affine", "false" },
				{ "_remove_final_layer_norm", "true" }, { "activation_function", "\"gelu\"" } }) {
			ObjectNode config = original.deepCopy();
			config.set(change[0], JSON.readTree(change[1]));
			JSON.writeValue(file.toFile(), config);
			assertThatThrownBy(() -> Checkpoints.open(model)).as(change[0])
				.isInstanceOf(CheckpointException.class)
				.hasMessageContaining("config.json")
				.hasMessageContaining(
						change[0].equals("activation_function") ? "hidden activation 'gelu' is not supported"
								: change[0] + " " + change[1] + " is not supported");
		}
	}

	/**
	 * OPT's original releases were saved from {@code OPTModel}: their tensors are named
	 * {@code decoder.*}, not {@code model.decoder.*}; both load, to the same values.
	 */
	@Test
	void optTensorsUnderEitherDecoderPrefix() throws IOException {
		Path model = copyOf("tiny-opt");
		float[] embedding;
		float[] fc1;
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			embedding = checkpoint.embedding().readAll().data();
			fc1 = checkpoint.layer(1).up().readAll().data();
		}
		Path file = model.resolve("model.safetensors");
		ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
		int headerLength = (int) bytes.getLong(0);
		String header = new String(bytes.array(), 8, headerLength, StandardCharsets.UTF_8);
		byte[] renamed = header.replace("\"model.decoder.", "\"decoder.").getBytes(StandardCharsets.UTF_8);
		ByteBuffer rewritten = ByteBuffer.allocate(8 + renamed.length + bytes.capacity() - 8 - headerLength)
			.order(ByteOrder.LITTLE_ENDIAN);
		rewritten.putLong(renamed.length)
			.put(renamed)
			.put(bytes.array(), 8 + headerLength, bytes.capacity() - 8 - headerLength);
		Files.write(file, rewritten.array());
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			assertThat(checkpoint.embedding().readAll().data()).containsExactly(embedding);
			assertThat(checkpoint.layer(1).up().readAll().data()).containsExactly(fc1);
			assertThat(checkpoint.layer(1).downBias()).isNotNull();
		}
	}

	@Test
	void unknownHiddenActivation() throws IOException {
		Path model = copyOfTinyLlama();
		ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
		config.put("hidden_act", "gelu_fast");
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		assertThatThrownBy(() -> Checkpoints.open(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("config.json")
			.hasMessageContaining(
					"hidden activation 'gelu_fast' is not supported (supported: [silu, swish, relu, gelu_pytorch_tanh, gelu_new])");
	}

	@Test
	void theHiddenActivationIsTheConfigurations() throws IOException {
		Path model = copyOfTinyLlama();
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			assertThat(checkpoint.config().hiddenActivation()).isEqualTo(HiddenActivation.SILU);
		}
		ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
		config.put("hidden_act", "relu");
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			assertThat(checkpoint.config().hiddenActivation()).isEqualTo(HiddenActivation.RELU);
		}
	}

	/**
	 * Gemma's published files say {@code hidden_act: gelu} and name the gate's activation
	 * in {@code hidden_activation}, which transformers follows.
	 */
	@Test
	void gemmasHiddenActivationWins() throws IOException {
		Path model = copyOf("tiny-gemma");
		ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
		config.put("hidden_act", "gelu");
		config.put("hidden_activation", "gelu_pytorch_tanh");
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			assertThat(checkpoint.config().hiddenActivation()).isEqualTo(HiddenActivation.GELU_TANH);
			assertThat(checkpoint.config().embeddingScale()).isEqualTo((float) Math.sqrt(64));
		}
		config.remove("hidden_activation");
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		assertThatThrownBy(() -> Checkpoints.open(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("hidden activation 'gelu' is not supported");
	}

	/**
	 * Gemma 3's layer pattern and rotary bases, as transformers writes them now (a layer
	 * type per layer, rotary parameters per type) and as older files did (a pattern
	 * period, rope_theta and rope_local_base_freq), read the same.
	 */
	@Test
	void gemma3sLayerPatternInBothSpellings() throws IOException {
		Path model = copyOf("tiny-gemma3");
		ModelConfig current;
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			current = checkpoint.config();
		}
		assertThat(current.windowedLayers()).containsExactly(true, false, true, false);
		assertThat(current.slidingWindow()).isEqualTo(8);
		assertThat(current.ropeTheta()).isEqualTo(1_000_000);
		assertThat(current.windowedRopeTheta()).isEqualTo(10_000);
		assertThat(current.attentionScale()).isEqualTo((float) Math.pow(24, -0.5));
		ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
		config.remove(List.of("layer_types", "rope_parameters"));
		config.put("sliding_window_pattern", 2);
		config.put("rope_theta", 1_000_000.0);
		config.put("rope_local_base_freq", 10_000.0);
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		try (Checkpoint checkpoint = Checkpoints.open(model)) {
			ModelConfig older = checkpoint.config();
			assertThat(older.windowedLayers()).containsExactly(current.windowedLayers());
			assertThat(older.ropeTheta()).isEqualTo(current.ropeTheta());
			assertThat(older.windowedRopeTheta()).isEqualTo(current.windowedRopeTheta());
		}
		config.put("final_logit_softcapping", 30.0);
		JSON.writeValue(model.resolve("config.json").toFile(), config);
		assertThatThrownBy(() -> Checkpoints.open(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("final_logit_softcapping is not supported");
	}

	@Test
	void unsupportedSafetensorsDtype() throws IOException {
		Path model = this.dir.resolve("int8");
		Files.createDirectories(model);
		Files.copy(Fixtures.path("tiny-mistral/config.json"), model.resolve("config.json"));
		String header = "{\"model.embed_tokens.weight\":{\"dtype\":\"I8\",\"shape\":[256,64],\"data_offsets\":[0,16384]}}";
		byte[] json = header.getBytes(StandardCharsets.UTF_8);
		ByteBuffer buffer = ByteBuffer.allocate(8 + json.length + 16384).order(ByteOrder.LITTLE_ENDIAN);
		buffer.putLong(json.length).put(json);
		Files.write(model.resolve("model.safetensors"), buffer.array());
		assertThatThrownBy(() -> loadAllTensors(model)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("tensor 'model.embed_tokens.weight' has dtype I8, which is not supported");
	}

	@Test
	void unknownAndUnsupportedQuantTypes() throws IOException {
		// A GGUF with one tensor of type Q5_K (known to GGML, not supported here) and one
		// of an unknown id.
		for (int typeId : new int[] { 13, 99 }) {
			Path file = this.dir.resolve("quant" + typeId + ".gguf");
			Files.write(file, gguf("w", typeId, 256));
			if (typeId == 99) {
				assertThatThrownBy(() -> GgufFile.open(file)).isInstanceOf(CheckpointException.class)
					.hasMessageContaining("tensor 'w' has unknown GGML type id 99");
			}
			else {
				try (GgufFile gguf = GgufFile.open(file)) {
					assertThatThrownBy(() -> gguf.dequantize(gguf.tensors().get("w")))
						.isInstanceOf(CheckpointException.class)
						.hasMessageContaining("tensor 'w' uses quantisation Q5_K, which is not supported");
				}
			}
		}
	}

	@Test
	void notAGgufFile() throws IOException {
		Path file = this.dir.resolve("junk.gguf");
		Files.writeString(file, "definitely not a model");
		assertThatThrownBy(() -> Checkpoints.open(file)).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("junk.gguf is not a GGUF file");
	}

	/**
	 * A minimal GGUF v3 file with one tensor of the given type and element count, data
	 * zeroed.
	 */
	static byte[] gguf(String name, int typeId, int elements) {
		List<byte[]> parts = new ArrayList<>();
		ByteBuffer header = ByteBuffer.allocate(1024).order(ByteOrder.LITTLE_ENDIAN);
		header.putInt(0x46554747).putInt(3).putLong(1).putLong(1);
		byte[] key = "general.architecture".getBytes(StandardCharsets.UTF_8);
		byte[] value = "llama".getBytes(StandardCharsets.UTF_8);
		header.putLong(key.length).put(key).putInt(8).putLong(value.length).put(value);
		byte[] tensorName = name.getBytes(StandardCharsets.UTF_8);
		header.putLong(tensorName.length).put(tensorName).putInt(1).putLong(elements).putInt(typeId).putLong(0);
		int aligned = (header.position() + 31) / 32 * 32;
		byte[] out = new byte[aligned + elements * 4];
		System.arraycopy(header.array(), 0, out, 0, header.position());
		parts.add(out);
		return out;
	}

}

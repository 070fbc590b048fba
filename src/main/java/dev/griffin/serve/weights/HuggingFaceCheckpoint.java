package dev.griffin.serve.weights;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import dev.griffin.serve.model.Architecture;
import dev.griffin.serve.model.HiddenActivation;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.RopeScaling;
import dev.griffin.serve.weights.WeightNames.Format;

/**
 * A Hugging Face model directory: {@code config.json}, {@code generation_config.json} and
 * {@code model.safetensors} or a sharded {@code model.safetensors.index.json}.
 */
public final class HuggingFaceCheckpoint extends Checkpoint {

	private static final ObjectMapper JSON = new ObjectMapper();

	private final ModelConfig config;

	private final List<SafetensorsFile> files = new ArrayList<>();

	private final Map<String, SafetensorsFile> fileByTensor = new HashMap<>();

	/**
	 * Where the text model's tensors live: "model." for a causal LM's own checkpoint, or
	 * the language model's place inside a multimodal checkpoint (Gemma 3's
	 * {@code language_model.model.} or {@code model.language_model.}).
	 */
	private String textModel = "model.";

	public HuggingFaceCheckpoint(Path directory) {
		super(directory, Format.HUGGING_FACE);
		this.config = readConfig(directory);
		try {
			Path index = directory.resolve("model.safetensors.index.json");
			Path single = directory.resolve("model.safetensors");
			if (Files.exists(index)) {
				JsonNode weightMap = readJson(index).path("weight_map");
				Map<String, SafetensorsFile> byName = new HashMap<>();
				for (Iterator<Map.Entry<String, JsonNode>> it = weightMap.fields(); it.hasNext();) {
					Map.Entry<String, JsonNode> entry = it.next();
					String shard = entry.getValue().asText();
					SafetensorsFile file = byName.get(shard);
					if (file == null) {
						Path shardPath = directory.resolve(shard);
						if (!Files.exists(shardPath)) {
							throw new CheckpointException("%s names shard %s for tensor '%s', but %s does not exist"
								.formatted(index, shard, entry.getKey(), shardPath));
						}
						file = SafetensorsFile.open(shardPath);
						byName.put(shard, file);
						this.files.add(file);
					}
					if (!file.entries().containsKey(entry.getKey())) {
						throw new CheckpointException(
								"%s: tensor '%s' is not in shard %s".formatted(index, entry.getKey(), shard));
					}
					this.fileByTensor.put(entry.getKey(), file);
				}
			}
			else if (Files.exists(single)) {
				SafetensorsFile file = SafetensorsFile.open(single);
				this.files.add(file);
				file.entries().keySet().forEach((name) -> this.fileByTensor.put(name, file));
			}
			else {
				throw new CheckpointException(
						directory + " has neither model.safetensors nor model.safetensors.index.json");
			}
		}
		catch (RuntimeException ex) {
			close();
			throw ex;
		}
		for (String prefix : MULTIMODAL_TEXT_MODELS) {
			if (!this.fileByTensor.containsKey("model.embed_tokens.weight")
					&& this.fileByTensor.containsKey(prefix + "embed_tokens.weight")) {
				this.textModel = prefix;
			}
		}
	}

	/**
	 * Where multimodal checkpoints keep their language model's {@code model.*} tensors.
	 */
	private static final List<String> MULTIMODAL_TEXT_MODELS = List.of("language_model.model.",
			"model.language_model.");

	/** The stored name of a text model's tensor. */
	private String stored(String name) {
		if (this.textModel.equals("model.")) {
			return name;
		}
		if (name.startsWith("model.")) {
			return this.textModel + name.substring("model.".length());
		}
		// an untied head beside the language model
		return this.textModel.startsWith("language_model.") ? "language_model." + name : name;
	}

	private static JsonNode readJson(Path path) {
		try {
			return JSON.readTree(path.toFile());
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot read " + path + ": " + ex.getMessage(), ex);
		}
	}

	static ModelConfig readConfig(Path directory) {
		Path path = directory.resolve("config.json");
		if (!Files.exists(path)) {
			throw new CheckpointException(directory + " has no config.json");
		}
		JsonNode c = readJson(path);
		try {
			if ("gemma3".equals(c.path("model_type").asText(null))) {
				c = gemma3TextConfig(c, path);
			}
			Architecture architecture = Architecture.of(c.path("model_type").asText(null), path.toString());
			if (architecture.isOpt()) {
				return optConfig(c, path, eosTokenIds(c, directory));
			}
			boolean gemma2 = architecture == Architecture.GEMMA2;
			boolean gemma3 = architecture == Architecture.GEMMA3;
			boolean gemma = architecture.isGemma();
			// transformers' defaults for each family where the file leaves a field out;
			// Gemma's files name the gate's activation in hidden_activation (hidden_act
			// there says "gelu", which transformers overrides)
			String act = text(c, "hidden_act", gemma ? "gelu_pytorch_tanh" : "silu");
			HiddenActivation activation = HiddenActivation.of(gemma ? text(c, "hidden_activation", act) : act,
					path.toString());
			if (c.path("mlp_bias").asBoolean(false)) {
				throw new CheckpointException(path + ": mlp_bias true is not supported");
			}
			// Gemma 2 soft-caps its attention scores and logits (transformers' defaults
			// 50
			// and 30); no other family here does
			double attentionSoftCap = gemma2 ? c.path("attn_logit_softcapping").asDouble(50) : 0;
			double finalSoftCap = gemma2 ? c.path("final_logit_softcapping").asDouble(30) : 0;
			for (String softCap : List.of("attn_logit_softcapping", "final_logit_softcapping")) {
				if (!gemma2 && c.hasNonNull(softCap)) {
					throw new CheckpointException(path + ": " + softCap + " is not supported");
				}
			}
			int hidden = requiredInt(c, "hidden_size", path);
			int heads = requiredInt(c, "num_attention_heads", path);
			int layers = requiredInt(c, "num_hidden_layers", path);
			JsonNode rope = c.has("rope_parameters") ? c.get("rope_parameters") : c.path("rope_scaling");
			boolean perLayerType = rope.has("full_attention");
			// Gemma 3 names a rotary base per kind of layer (older files: rope_theta for
			// the global layers, rope_local_base_freq for the local ones)
			JsonNode globalRope = perLayerType ? rope.get("full_attention") : rope;
			double theta = globalRope.has("rope_theta") ? globalRope.get("rope_theta").asDouble()
					: c.path("rope_theta").asDouble(gemma3 ? 1_000_000 : 10000);
			RopeScaling scaling = ropeScaling(globalRope, path);
			int window = 0;
			boolean[] windowed = null;
			double windowedTheta = 0;
			if (architecture == Architecture.MISTRAL
					|| (architecture == Architecture.QWEN2 && c.path("use_sliding_window").asBoolean(false))) {
				window = c.path("sliding_window").isNumber() ? c.get("sliding_window").asInt() : 0;
			}
			if (gemma2) {
				window = requiredInt(c, "sliding_window", path);
				windowed = layerTypes(c, layers, 2, path);
			}
			if (gemma3) {
				window = requiredInt(c, "sliding_window", path);
				windowed = layerTypes(c, layers, 6, path);
				JsonNode localRope = perLayerType ? rope.path("sliding_attention") : c;
				if (perLayerType && ropeScaling(localRope, path) != RopeScaling.NONE) {
					throw new CheckpointException(
							path + ": rope scaling of the sliding-window layers is not supported");
				}
				windowedTheta = perLayerType ? localRope.path("rope_theta").asDouble(10000)
						: c.path("rope_local_base_freq").asDouble(10000);
			}
			boolean bias = (architecture == Architecture.QWEN2) || c.path("attention_bias").asBoolean(false);
			return new ModelConfig(architecture, hidden, requiredInt(c, "intermediate_size", path), layers, heads,
					c.path("num_key_value_heads").asInt(heads),
					c.path("head_dim").isNumber() ? c.get("head_dim").asInt() : (gemma ? 256 : hidden / heads),
					requiredInt(c, "vocab_size", path), c.path("max_position_embeddings").asInt(2048),
					c.path("rms_norm_eps").asDouble(1e-6), theta, scaling,
					c.path("tie_word_embeddings").asBoolean(gemma), bias, window, c.path("bos_token_id").asInt(-1),
					eosTokenIds(c, directory), activation, windowed, windowedTheta,
					(gemma2 || gemma3) ? c.path("query_pre_attn_scalar").asDouble(256) : 0, attentionSoftCap,
					finalSoftCap, false, 0);
		}
		catch (IllegalArgumentException ex) {
			throw new CheckpointException(path + ": " + ex.getMessage(), ex);
		}
	}

	/**
	 * Gemma 3's multimodal checkpoints ({@code Gemma3ForConditionalGeneration}, model
	 * type {@code gemma3}): the language model is read, the vision tower is not. Its
	 * config is {@code text_config}, which the published files write sparsely:
	 * transformers' Gemma3TextConfig defaults fill what it leaves out.
	 */
	private static JsonNode gemma3TextConfig(JsonNode c, Path path) {
		if (!c.path("text_config").isObject()) {
			throw new CheckpointException(path + ": a gemma3 (multimodal) config without text_config");
		}
		ObjectNode text = ((ObjectNode) c.get("text_config")).deepCopy();
		text.put("model_type", "gemma3_text");
		Map<String, Number> defaults = Map.ofEntries(Map.entry("vocab_size", 262208), Map.entry("hidden_size", 2304),
				Map.entry("intermediate_size", 9216), Map.entry("num_hidden_layers", 26),
				Map.entry("num_attention_heads", 8), Map.entry("num_key_value_heads", 4), Map.entry("head_dim", 256),
				Map.entry("max_position_embeddings", 131072), Map.entry("query_pre_attn_scalar", 256),
				Map.entry("sliding_window", 4096), Map.entry("bos_token_id", 2), Map.entry("eos_token_id", 1));
		defaults.forEach((field, value) -> {
			if (!text.has(field)) {
				text.set(field, JSON.getNodeFactory().numberNode(value.intValue()));
			}
		});
		if (!text.has("tie_word_embeddings")) {
			text.put("tie_word_embeddings", c.path("tie_word_embeddings").asBoolean(true));
		}
		return text;
	}

	/**
	 * An OPT config, with transformers' defaults where the file leaves a field out: ReLU,
	 * norms before the sublayers, biases on every projection, tied embeddings, token 2 as
	 * both BOS and EOS, and nn.LayerNorm's epsilon.
	 */
	private static ModelConfig optConfig(JsonNode c, Path path, int[] eos) {
		if (!c.path("layer_norm_elementwise_affine").asBoolean(true)) {
			throw new CheckpointException(path + ": layer_norm_elementwise_affine false is not supported");
		}
		boolean postNorm = !c.path("do_layer_norm_before").asBoolean(true);
		if (!postNorm && c.path("_remove_final_layer_norm").asBoolean(false)) {
			throw new CheckpointException(path + ": _remove_final_layer_norm true is not supported");
		}
		int hidden = requiredInt(c, "hidden_size", path);
		int heads = requiredInt(c, "num_attention_heads", path);
		if (hidden % heads != 0) {
			throw new CheckpointException(
					"%s: hidden_size %d is not a multiple of num_attention_heads %d".formatted(path, hidden, heads));
		}
		HiddenActivation activation = HiddenActivation.of(text(c, "activation_function", "relu"), path.toString());
		int[] eosIds = (eos.length > 0) ? eos : new int[] { 2 };
		return new ModelConfig(Architecture.OPT, hidden, requiredInt(c, "ffn_dim", path),
				requiredInt(c, "num_hidden_layers", path), heads, heads, hidden / heads,
				requiredInt(c, "vocab_size", path), c.path("max_position_embeddings").asInt(2048), 1e-5, 10000,
				RopeScaling.NONE, c.path("tie_word_embeddings").asBoolean(true), c.path("enable_bias").asBoolean(true),
				0, c.path("bos_token_id").asInt(2), eosIds, activation, null, 0, 0, 0, 0, postNorm,
				c.path("word_embed_proj_dim").asInt(hidden));
	}

	/** eos_token_id of the config and of generation_config.json, in that order. */
	private static int[] eosTokenIds(JsonNode c, Path directory) {
		Set<Integer> eos = new LinkedHashSet<>();
		addIds(eos, c.path("eos_token_id"));
		Path generation = directory.resolve("generation_config.json");
		if (Files.exists(generation)) {
			addIds(eos, readJson(generation).path("eos_token_id"));
		}
		return eos.stream().mapToInt(Integer::intValue).toArray();
	}

	private static RopeScaling ropeScaling(JsonNode rope, Path path) {
		String type = rope.path("rope_type").asText(rope.path("type").asText("default"));
		return switch (type) {
			case "default" -> RopeScaling.NONE;
			case "linear" -> new RopeScaling(RopeScaling.Type.LINEAR, rope.path("factor").asDouble(), 0, 0, 0);
			case "llama3" -> new RopeScaling(RopeScaling.Type.LLAMA3, rope.path("factor").asDouble(),
					rope.path("low_freq_factor").asDouble(), rope.path("high_freq_factor").asDouble(),
					rope.path("original_max_position_embeddings").asInt());
			default -> throw new CheckpointException(path + ": rope type '" + type + "' is not supported");
		};
	}

	private static void addIds(Set<Integer> ids, JsonNode node) {
		if (node.isNumber()) {
			ids.add(node.asInt());
		}
		else if (node.isArray()) {
			node.forEach((id) -> ids.add(id.asInt()));
		}
	}

	/**
	 * Which layers attend within the sliding window: {@code layer_types}, or every layer
	 * but each {@code sliding_window_pattern}-th (older files; the family's period by
	 * default: 2 for Gemma 2, 6 for Gemma 3).
	 */
	private static boolean[] layerTypes(JsonNode c, int layers, int period, Path path) {
		boolean[] windowed = new boolean[layers];
		JsonNode types = c.path("layer_types");
		if (types.isArray()) {
			if (types.size() != layers) {
				throw new CheckpointException(
						"%s: layer_types has %d entries for %d layers".formatted(path, types.size(), layers));
			}
			for (int i = 0; i < layers; i++) {
				String type = types.get(i).asText();
				windowed[i] = switch (type) {
					case "sliding_attention" -> true;
					case "full_attention" -> false;
					default -> throw new CheckpointException(
							"%s: layer type '%s' is not supported (supported: sliding_attention, full_attention)"
								.formatted(path, type));
				};
			}
			return windowed;
		}
		int pattern = c.path("sliding_window_pattern").asInt(period);
		for (int i = 0; i < layers; i++) {
			windowed[i] = (i + 1) % pattern != 0;
		}
		return windowed;
	}

	private static String text(JsonNode node, String field, String fallback) {
		return node.path(field).isTextual() ? node.get(field).asText() : fallback;
	}

	private static int requiredInt(JsonNode node, String field, Path path) {
		if (!node.path(field).isNumber()) {
			throw new CheckpointException(path + ": missing or non-numeric '" + field + "'");
		}
		return node.get(field).asInt();
	}

	@Override
	public ModelConfig config() {
		return this.config;
	}

	/** Gemma's files store w for a norm that multiplies by 1 + w. */
	@Override
	protected TensorRows norm(TensorRows stored) {
		return this.config.architecture().offsetsNormWeights() ? stored.plus(1f) : stored;
	}

	@Override
	protected boolean contains(String name) {
		return this.fileByTensor.containsKey(stored(name));
	}

	@Override
	protected long[] shapeOf(String name) {
		String stored = stored(name);
		return this.fileByTensor.get(stored).shape(stored);
	}

	@Override
	protected void readRows(String name, long from, int count, float[] out) {
		String stored = stored(name);
		this.fileByTensor.get(stored).readRows(stored, from, count, out);
	}

	@Override
	protected Path fileOf(String name) {
		SafetensorsFile file = this.fileByTensor.get(stored(name));
		return (file != null) ? file.path() : path();
	}

	@Override
	public void close() {
		for (SafetensorsFile file : this.files) {
			try {
				file.close();
			}
			catch (IOException ex) {
				// closing a read-only mapping cannot lose data
			}
		}
	}

}

package dev.griffin.serve.weights;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import dev.griffin.serve.model.Architecture;
import dev.griffin.serve.model.HiddenActivation;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.RopeScaling;
import dev.griffin.serve.weights.WeightNames.Format;

/**
 * A GGUF checkpoint (llama.cpp layout), dequantised to float32 and converted to Hugging
 * Face layout.
 */
public final class GgufCheckpoint extends Checkpoint {

	private final GgufFile file;

	private final ModelConfig config;

	private final boolean permutedQueryKey;

	public GgufCheckpoint(Path path) {
		super(path, Format.GGUF);
		this.file = GgufFile.open(path);
		try {
			this.config = readConfig(this.file);
		}
		catch (IllegalArgumentException | ClassCastException ex) {
			close();
			throw new CheckpointException(path + ": invalid model metadata: " + ex.getMessage(), ex);
		}
		// llama.cpp's converter interleaves the rotary halves of q and k rows for the
		// llama architecture.
		this.permutedQueryKey = this.config.architecture().interleavesQueryKeyInGguf();
	}

	public GgufFile file() {
		return this.file;
	}

	private static ModelConfig readConfig(GgufFile file) {
		String archName = file.string("general.architecture");
		Architecture architecture = Architecture.ofGguf(archName, file.path().toString());
		String p = archName + ".";
		int hidden = required(file, p + "embedding_length");
		int heads = required(file, p + "attention.head_count");
		int kvHeads = optional(file, p + "attention.head_count_kv", heads);
		int headDim = optional(file, p + "attention.key_length", hidden / heads);
		int vocab = optional(file, p + "vocab_size", -1);
		if (vocab < 0) {
			Object tokens = file.metadata().get("tokenizer.ggml.tokens");
			vocab = (tokens instanceof List<?> list) ? list.size() : required(file, p + "vocab_size");
		}
		Number epsilon = file.number(p + "attention.layer_norm_rms_epsilon");
		if (epsilon == null) {
			throw new CheckpointException(
					file.path() + ": missing metadata '" + p + "attention.layer_norm_rms_epsilon'");
		}
		Number theta = file.number(p + "rope.freq_base");
		RopeScaling scaling = RopeScaling.NONE;
		String scalingType = file.string(p + "rope.scaling.type");
		Number scalingFactor = file.number(p + "rope.scaling.factor");
		if (scalingFactor == null) {
			scalingFactor = file.number(p + "rope.scale_linear"); // the older key
		}
		if (scalingType == null || scalingType.equals("linear")) {
			// linear is llama.cpp's type where the file names none; Gemma 3's local
			// layers keep their rotation unscaled (ModelBuilder), as in llama.cpp
			if (scalingFactor != null && scalingFactor.doubleValue() != 0 && scalingFactor.doubleValue() != 1) {
				scaling = new RopeScaling(RopeScaling.Type.LINEAR, scalingFactor.doubleValue(), 0, 0, 0);
			}
		}
		else if (!scalingType.equals("none")) {
			throw new CheckpointException(
					file.path() + ": rope scaling '" + scalingType + "' in GGUF metadata is not supported");
		}
		boolean tied = !file.tensors().containsKey(WeightNames.lmHead(Format.GGUF));
		boolean bias = file.tensors()
			.containsKey(WeightNames.layer(Format.GGUF, 0, WeightNames.LayerTensor.QUERY_BIAS));
		Set<Integer> eos = endTokens(file);
		Number bos = file.number("tokenizer.ggml.bos_token_id");
		boolean gemma2 = architecture == Architecture.GEMMA2;
		Number finalCap = file.number(p + "final_logit_softcapping");
		Number attentionCap = file.number(p + "attn_logit_softcapping");
		if (!gemma2 && ((finalCap != null && finalCap.doubleValue() > 0)
				|| (attentionCap != null && attentionCap.doubleValue() > 0))) {
			throw new CheckpointException(file.path() + ": logit soft-capping is not supported for " + archName);
		}
		int layers = required(file, p + "block_count");
		int window = optional(file, p + "attention.sliding_window", gemma2 ? 4096 : 0);
		boolean[] windowed = null;
		double windowedTheta = 0;
		double queryScalar = 0;
		double attentionSoftCap = 0;
		double finalSoftCap = 0;
		if (gemma2 || architecture == Architecture.GEMMA3) {
			// llama.cpp's reading of these files: local layers but every second (Gemma 2)
			// or sixth (Gemma 3), or the file's pattern; Gemma 3's local rotary base
			// 10000 unless the file says (Gemma 2's: the global one); the score scale of
			// 1/sqrt(Dh), 1/sqrt(D/H) for the 27B models (46 and 62 layers); Gemma 2's
			// soft caps 50 and 30 unless the file says
			int bigModelLayers = gemma2 ? 46 : 62;
			if (window > 0) {
				windowed = new boolean[layers];
				Object pattern = file.metadata().get(p + "attention.sliding_window_pattern");
				if (pattern instanceof List<?> perLayer && perLayer.size() != layers) {
					throw new CheckpointException("%s: %d sliding-window flags for %d layers".formatted(file.path(),
							perLayer.size(), layers));
				}
				int period = (pattern instanceof Number n) ? n.intValue() : (gemma2 ? 2 : 6);
				for (int i = 0; i < layers; i++) {
					windowed[i] = (pattern instanceof List<?> perLayer) ? Boolean.TRUE.equals(perLayer.get(i))
							: period == 0 || i % period < period - 1;
				}
				Number localTheta = file.number(p + "rope.freq_base_swa");
				windowedTheta = (localTheta != null) ? localTheta.doubleValue() : (gemma2 ? 0 : 10000);
			}
			queryScalar = (layers == bigModelLayers) ? (double) hidden / heads : headDim;
			if (gemma2) {
				attentionSoftCap = (attentionCap != null) ? attentionCap.doubleValue() : 50;
				finalSoftCap = (finalCap != null) ? finalCap.doubleValue() : 30;
			}
		}
		// GGUF has no activation key: llama.cpp's graphs run Gemma's gate through GELU
		// (tanh) and the others' through SiLU
		return new ModelConfig(architecture, hidden, required(file, p + "feed_forward_length"), layers, heads, kvHeads,
				headDim, vocab, optional(file, p + "context_length", 2048), epsilon.doubleValue(),
				(theta != null) ? theta.doubleValue() : 10000.0, scaling, tied, bias, window,
				(bos != null) ? bos.intValue() : -1, eos.stream().mapToInt(Integer::intValue).toArray(),
				architecture.isGemma() ? HiddenActivation.GELU_TANH : HiddenActivation.SILU, windowed, windowedTheta,
				queryScalar, attentionSoftCap, finalSoftCap, false, 0);
	}

	/**
	 * The tokens that end generation: the file's end-of-sequence and end-of-turn ids, and
	 * every control token whose text ends a turn or a text in a chat format these files
	 * carry. A file names one end token, but a model may end its reply with another:
	 * Qwen2.5's instruct models end a turn with {@code <|im_end|>} (the file's) or with
	 * {@code <|endoftext|>} (their Hugging Face generation config names both), and a
	 * sampled or GRIFFIN reply that ends on the second would otherwise run on into a new
	 * text. llama.cpp ends generation on the same control tokens. Tokens that are not
	 * control tokens never end it, whatever their text.
	 */
	static Set<Integer> endTokens(GgufFile file) {
		Set<Integer> ends = new LinkedHashSet<>();
		for (String key : List.of("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")) {
			Number id = file.number(key);
			if (id != null) {
				ends.add(id.intValue());
			}
		}
		List<?> tokens = (file.metadata().get("tokenizer.ggml.tokens") instanceof List<?> list) ? list : List.of();
		List<?> types = (file.metadata().get("tokenizer.ggml.token_type") instanceof List<?> list) ? list : List.of();
		for (int id = 0; id < Math.min(tokens.size(), types.size()); id++) {
			if (types.get(id) instanceof Number type && type.intValue() == CONTROL_TOKEN
					&& END_TEXTS.contains(tokens.get(id))) {
				ends.add(id);
			}
		}
		return ends;
	}

	/** {@code tokenizer.ggml.token_type} of a control token. */
	private static final int CONTROL_TOKEN = 3;

	/**
	 * Control-token texts that end a turn or a text: ChatML's and GPT-2's, Llama 3's,
	 * Phi-3's, Gemma's and CodeLlama's.
	 */
	private static final Set<String> END_TEXTS = Set.of("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>",
			"<|end_of_text|>", "<|end|>", "<end_of_turn>", "<EOT>");

	private static int required(GgufFile file, String key) {
		Number value = file.number(key);
		if (value == null) {
			throw new CheckpointException(file.path() + ": missing metadata '" + key + "'");
		}
		return Math.toIntExact(value.longValue());
	}

	private static int optional(GgufFile file, String key, int fallback) {
		Number value = file.number(key);
		return (value != null) ? Math.toIntExact(value.longValue()) : fallback;
	}

	@Override
	public ModelConfig config() {
		return this.config;
	}

	@Override
	protected boolean contains(String name) {
		return this.file.tensors().containsKey(name);
	}

	@Override
	protected long[] shapeOf(String name) {
		return this.file.tensors().get(name).shape().clone();
	}

	@Override
	protected void readRows(String name, long from, int count, float[] out) {
		this.file.dequantizeRows(this.file.tensors().get(name), from, count, out);
	}

	@Override
	protected Path fileOf(String name) {
		return path();
	}

	@Override
	protected TensorRows query(int layer, long rows, long columns) {
		TensorRows tensor = super.query(layer, rows, columns);
		return this.permutedQueryKey ? unpermuted(tensor, this.config.numberOfAttentionHeads()) : tensor;
	}

	@Override
	protected TensorRows key(int layer, long rows, long columns) {
		TensorRows tensor = super.key(layer, rows, columns);
		return this.permutedQueryKey ? unpermuted(tensor, this.config.numberOfKeyValueHeads()) : tensor;
	}

	/**
	 * Undoes llama.cpp's q/k row permutation: within each head, GGUF stores rows as
	 * interleaved pairs (j, half) while Hugging Face stores the first rotary half, then
	 * the second. Row {@code row} of the Hugging Face layout is this row of the GGUF one.
	 */
	static int interleavedRow(int row, int headSize) {
		int half = headSize / 2;
		int head = row / headSize;
		int within = row % headSize;
		return head * headSize + 2 * (within % half) + within / half;
	}

	private TensorRows unpermuted(TensorRows tensor, int heads) {
		int headSize = tensor.rows() / heads;
		return tensor.rowsFrom(row -> interleavedRow(row, headSize));
	}

	@Override
	public void close() {
		try {
			this.file.close();
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
	}

}

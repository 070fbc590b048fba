package dev.griffin.serve.weights;

/**
 * The one place where checkpoint tensor names live, for both Hugging Face and GGUF
 * (llama.cpp) naming.
 */
public final class WeightNames {

	private WeightNames() {
	}

	/** Checkpoint naming conventions. */
	public enum Format {

		HUGGING_FACE, GGUF

	}

	/** Tensors of one decoder layer. */
	public enum LayerTensor {

		ATTENTION_NORM("input_layernorm.weight", "attn_norm.weight"), QUERY("self_attn.q_proj.weight", "attn_q.weight"),
		KEY("self_attn.k_proj.weight", "attn_k.weight"), VALUE("self_attn.v_proj.weight", "attn_v.weight"),
		QUERY_BIAS("self_attn.q_proj.bias", "attn_q.bias"), KEY_BIAS("self_attn.k_proj.bias", "attn_k.bias"),
		VALUE_BIAS("self_attn.v_proj.bias", "attn_v.bias"), OUTPUT("self_attn.o_proj.weight", "attn_output.weight"),
		FFN_NORM("post_attention_layernorm.weight", "ffn_norm.weight"), GATE("mlp.gate_proj.weight", "ffn_gate.weight"),
		UP("mlp.up_proj.weight", "ffn_up.weight"), DOWN("mlp.down_proj.weight", "ffn_down.weight"),
		/**
		 * Gemma 3: attention's output norm (the name Llama gives its feed-forward norm).
		 */
		POST_ATTENTION_NORM("post_attention_layernorm.weight", "post_attention_norm.weight"),
		/** Gemma 3: the feed-forward block's input norm. */
		PRE_FFN_NORM("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
		/** Gemma 3: the feed-forward block's output norm. */
		POST_FFN_NORM("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
		/** Gemma 3: the RMS norm of each query head. */
		QUERY_NORM("self_attn.q_norm.weight", "attn_q_norm.weight"),
		/** Gemma 3: the RMS norm of each key head. */
		KEY_NORM("self_attn.k_norm.weight", "attn_k_norm.weight");

		private final String huggingFace;

		private final String gguf;

		LayerTensor(String huggingFace, String gguf) {
			this.huggingFace = huggingFace;
			this.gguf = gguf;
		}

	}

	/**
	 * OPT's tensors of one decoder layer (Hugging Face naming only: llama.cpp reads no
	 * OPT file).
	 */
	public enum OptTensor {

		ATTENTION_NORM("self_attn_layer_norm.weight"), ATTENTION_NORM_BIAS("self_attn_layer_norm.bias"),
		QUERY("self_attn.q_proj.weight"), KEY("self_attn.k_proj.weight"), VALUE("self_attn.v_proj.weight"),
		QUERY_BIAS("self_attn.q_proj.bias"), KEY_BIAS("self_attn.k_proj.bias"), VALUE_BIAS("self_attn.v_proj.bias"),
		OUTPUT("self_attn.out_proj.weight"), OUTPUT_BIAS("self_attn.out_proj.bias"),
		FFN_NORM("final_layer_norm.weight"), FFN_NORM_BIAS("final_layer_norm.bias"), UP("fc1.weight"),
		UP_BIAS("fc1.bias"), DOWN("fc2.weight"), DOWN_BIAS("fc2.bias");

		private final String name;

		OptTensor(String name) {
			this.name = name;
		}

	}

	/**
	 * Where an OPT checkpoint keeps its decoder: {@code model.decoder.} as
	 * {@code OPTForCausalLM} saves it, {@code decoder.} as the original releases (saved
	 * from {@code OPTModel}) do.
	 */
	public static final java.util.List<String> OPT_DECODER_PREFIXES = java.util.List.of("model.decoder.", "decoder.");

	/** An OPT layer's tensor under the checkpoint's decoder prefix. */
	public static String optLayer(String decoder, int layer, OptTensor tensor) {
		return decoder + "layers." + layer + "." + tensor.name;
	}

	/**
	 * An OPT tensor outside the layers ({@code embed_tokens.weight},
	 * {@code embed_positions.weight}, {@code final_layer_norm.weight},
	 * {@code project_in.weight}...) under the checkpoint's decoder prefix.
	 */
	public static String optDecoder(String decoder, String name) {
		return decoder + name;
	}

	public static String layer(Format format, int layer, LayerTensor tensor) {
		return switch (format) {
			case HUGGING_FACE -> "model.layers." + layer + "." + tensor.huggingFace;
			case GGUF -> "blk." + layer + "." + tensor.gguf;
		};
	}

	public static String embedding(Format format) {
		return (format == Format.GGUF) ? "token_embd.weight" : "model.embed_tokens.weight";
	}

	public static String finalNorm(Format format) {
		return (format == Format.GGUF) ? "output_norm.weight" : "model.norm.weight";
	}

	public static String lmHead(Format format) {
		return (format == Format.GGUF) ? "output.weight" : "lm_head.weight";
	}

}

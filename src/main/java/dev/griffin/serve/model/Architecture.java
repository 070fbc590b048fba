package dev.griffin.serve.model;

import java.util.Arrays;
import java.util.Locale;

/** The decoder-only architectures this engine runs. */
public enum Architecture {

	/** Llama 2 and 3 (and SmolLM2, which is a Llama). */
	LLAMA("llama", "LlamaForCausalLM"),
	/** Mistral: Llama with sliding-window attention. */
	MISTRAL("mistral", "MistralForCausalLM"),
	/** Qwen2: Llama with q/k/v projection biases. */
	QWEN2("qwen2", "Qwen2ForCausalLM"),
	/**
	 * Gemma (the first): Llama with a GELU gate, token embeddings scaled by sqrt(D) and
	 * RMSNorm weights stored as offsets from 1.
	 */
	GEMMA("gemma", "GemmaForCausalLM"),
	/**
	 * Gemma 2: Gemma with norms after attention and the feed-forward block as well as
	 * before, local (sliding-window) layers between global ones, and soft-capped
	 * attention scores and logits.
	 */
	GEMMA2("gemma2", "Gemma2ForCausalLM"),
	/**
	 * Gemma 3's text model: Gemma with norms after attention and the feed-forward block
	 * as well as before, RMS-normed queries and keys, and local (sliding-window) layers
	 * with their own rotary base between global ones.
	 */
	GEMMA3("gemma3_text", "Gemma3ForCausalLM", "gemma3"),
	/**
	 * OPT: layer norms with biases, learned positions instead of rotary ones, biases on
	 * every projection and a non-gated feed-forward block {@code fc2(relu(fc1 x))}; the
	 * norms before the sublayers or after them (OPT-350m), and embeddings of another
	 * width than the residual stream projected in and out where the config says so.
	 * llama.cpp reads no OPT file, so neither does this engine.
	 */
	OPT("opt", "OPTForCausalLM", null);

	private final String modelType;

	private final String huggingFaceClass;

	private final String ggufName;

	Architecture(String modelType, String huggingFaceClass) {
		this(modelType, huggingFaceClass, modelType);
	}

	/**
	 * @param ggufName the GGUF file's {@code general.architecture}, where it differs from
	 * the Hugging Face model type; null where its GGUF files are not read
	 */
	Architecture(String modelType, String huggingFaceClass, String ggufName) {
		this.modelType = modelType;
		this.huggingFaceClass = huggingFaceClass;
		this.ggufName = ggufName;
	}

	public String modelType() {
		return this.modelType;
	}

	/** Gemma, Gemma 2 or Gemma 3. */
	public boolean isGemma() {
		return this == GEMMA || this == GEMMA2 || this == GEMMA3;
	}

	/** Whether the token embeddings are multiplied by sqrt(D) before the first layer. */
	public boolean scalesEmbeddings() {
		return isGemma();
	}

	/**
	 * Whether a Hugging Face checkpoint stores each RMSNorm's weight w for a scale of 1 +
	 * w (llama.cpp's GGUF files store 1 + w).
	 */
	public boolean offsetsNormWeights() {
		return isGemma();
	}

	/**
	 * Whether each layer also norms attention's and the feed-forward block's outputs
	 * before adding them to the residual stream.
	 */
	public boolean normsSublayerOutputs() {
		return this == GEMMA2 || this == GEMMA3;
	}

	/**
	 * Whether the model is OPT-like: layer norms with biases, learned absolute positions,
	 * a bias on every projection and a non-gated feed-forward block.
	 */
	public boolean isOpt() {
		return this == OPT;
	}

	/**
	 * Whether each feed-forward block is gated ({@code down(act(gate x) * up x)}), not
	 * {@code down(act(up x))}.
	 */
	public boolean gatesFeedForward() {
		return this != OPT;
	}

	/** Whether each layer norms each head's queries and keys before the rotation. */
	public boolean normsQueryKey() {
		return this == GEMMA3;
	}

	/**
	 * Whether its activations stay within float16's range. Gemma 3 270M's residual stream
	 * passes 41 000 after its sixth layer and float16's 65504 in its eighth, in
	 * transformers' float16 run as in ours, so its logits come out infinite.
	 */
	public boolean fitsHalfPrecision() {
		return this != GEMMA3;
	}

	/**
	 * Whether llama.cpp's GGUF files store q and k with their rows interleaved within
	 * each head (its converter does so for Llama-layout checkpoints only).
	 */
	public boolean interleavesQueryKeyInGguf() {
		return this == LLAMA || this == MISTRAL;
	}

	/** Resolves a Hugging Face {@code model_type} (or model class). */
	public static Architecture of(String name, String source) {
		String key = (name == null) ? "" : name.toLowerCase(Locale.ROOT);
		for (Architecture architecture : values()) {
			if (architecture.modelType.equals(key) || architecture.huggingFaceClass.equalsIgnoreCase(name)) {
				return architecture;
			}
		}
		throw unsupported(name, source);
	}

	/** Resolves a GGUF file's {@code general.architecture}. */
	public static Architecture ofGguf(String name, String source) {
		for (Architecture architecture : values()) {
			if (architecture.ggufName != null && architecture.ggufName.equals(name)) {
				return architecture;
			}
		}
		throw unsupported(name, source);
	}

	private static IllegalArgumentException unsupported(String name, String source) {
		return new IllegalArgumentException("%s: architecture '%s' is not supported (supported: %s)".formatted(source,
				name, Arrays.stream(values()).map(Architecture::modelType).toList()));
	}

}

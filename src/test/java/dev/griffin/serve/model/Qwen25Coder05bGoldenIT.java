package dev.griffin.serve.model;

/**
 * Qwen2.5-Coder-0.5B-Instruct (mostly Q5_0) against transformers
 * ({@link NamedModelGoldenBase}).
 */
class Qwen25Coder05bGoldenIT extends NamedModelGoldenBase {

	Qwen25Coder05bGoldenIT() {
		super("qwen2.5-coder-0.5b", "<|im_end|>", "<|endoftext|>");
	}

}

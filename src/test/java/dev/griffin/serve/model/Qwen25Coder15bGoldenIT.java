package dev.griffin.serve.model;

/**
 * Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) against transformers
 * ({@link NamedModelGoldenBase}).
 */
class Qwen25Coder15bGoldenIT extends NamedModelGoldenBase {

	Qwen25Coder15bGoldenIT() {
		super("qwen2.5-coder-1.5b", "<|im_end|>", "<|endoftext|>");
	}

}

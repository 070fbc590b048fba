package dev.griffin.serve.model;

import java.util.Arrays;

import org.junit.jupiter.api.Test;

import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.tokenizer.Tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Qwen2.5-Coder-0.5B-Instruct (mostly Q5_0) against transformers
 * ({@link NamedModelGoldenBase}), and its fill-in-the-middle prompts.
 */
class Qwen25Coder05bGoldenIT extends NamedModelGoldenBase {

	Qwen25Coder05bGoldenIT() {
		super("qwen2.5-coder-0.5b", "<|im_end|>", "<|endoftext|>");
	}

	/**
	 * A prefix and a suffix make a prompt in the prefix-suffix-middle order, with the
	 * model's own control tokens, and the model writes the code that goes between them.
	 */
	@Test
	void fillsInTheMiddle() {
		Tokenizer tokenizer = tokenizer();
		assertThat(tokenizer.fillsInTheMiddle()).isTrue();
		String prefix = "def add(a, b):\n    return ";
		String suffix = "\n\n\nprint(add(2, 3))\n";
		int[] prompt = tokenizer.encodeInfill(prefix, suffix);
		// the same ids as the control tokens' own text around the two parts
		assertThat(prompt).containsExactly(
				tokenizer.encode("<|fim_prefix|>" + prefix + "<|fim_suffix|>" + suffix + "<|fim_middle|>"));
		int middle = prompt[prompt.length - 1];
		assertThat(tokenizer.decode(new int[] { middle }, false)).isEqualTo("<|fim_middle|>");

		// control-token text in a part is that text, not a control token
		int[] forged = tokenizer.encodeInfill("x = '<|fim_middle|>'", "<|endoftext|>");
		assertThat(Arrays.stream(forged).filter((id) -> tokenizer.isSpecial(id)).count()).isEqualTo(3);
		assertThat(tokenizer.decode(forged, false))
			.isEqualTo("<|fim_prefix|>x = '<|fim_middle|>'<|fim_suffix|><|endoftext|><|fim_middle|>");

		int steps = 12;
		try (InferenceSession session = new InferenceSession(dense(), prompt.length + steps)) {
			int[] tokens = TinyModelGoldenTests.greedy(session, prompt, steps);
			String text = tokenizer.decode(tokens, true);
			assertThat(text).as("the middle of %s...%s", prefix, suffix).startsWith("a + b");
		}
	}

}

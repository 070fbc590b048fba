package dev.griffin.serve.model;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Activation;

/**
 * The activation on the gate of a feed-forward block, {@code down(act(gate x) * up x)}: a
 * checkpoint's {@code hidden_act}, never assumed. SiLU for Llama, Mistral and Qwen2; ReLU
 * for ReLU-Llama, whose zeros make GRIFFIN's statistic sparse; GELU (tanh) for Gemma.
 */
public enum HiddenActivation {

	/** x * sigmoid(x) (Hugging Face also calls it swish). */
	SILU(0, "silu", "swish"),
	/** max(x, 0). */
	RELU(1, "relu"),
	/**
	 * GELU by its tanh approximation, 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
	 * (Gemma's GeGLU).
	 */
	GELU_TANH(2, "gelu_pytorch_tanh", "gelu_new");

	private static final float SQRT_2_OVER_PI = (float) Math.sqrt(2 / Math.PI);

	private final int code;

	private final List<String> names;

	HiddenActivation(int code, String... names) {
		this.code = code;
		this.names = List.of(names);
	}

	/** The number the engine's TorchScript layer module knows this activation by. */
	public int code() {
		return this.code;
	}

	/** The gate's activations, in the gate's type: [T, K] -> [T, K]. */
	public NDArray apply(NDArray gate) {
		return switch (this) {
			case SILU -> gate.mul(Activation.sigmoid(gate));
			case RELU -> Activation.relu(gate);
			case GELU_TANH ->
				gate.mul(gate.mul(gate).mul(gate).mul(0.044715f).add(gate).mul(SQRT_2_OVER_PI).tanh().add(1f))
					.mul(0.5f);
		};
	}

	/**
	 * Resolves a checkpoint's {@code hidden_act}.
	 * @param source the checkpoint, for the message
	 * @throws IllegalArgumentException for an activation this engine does not compute
	 */
	public static HiddenActivation of(String name, String source) {
		String key = (name == null) ? "" : name.toLowerCase(Locale.ROOT);
		for (HiddenActivation activation : values()) {
			if (activation.names.contains(key)) {
				return activation;
			}
		}
		throw new IllegalArgumentException("%s: hidden activation '%s' is not supported (supported: %s)"
			.formatted(source, name, Arrays.stream(values()).flatMap((a) -> a.names.stream()).toList()));
	}

}

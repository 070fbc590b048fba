package dev.griffin.serve.generation;

/** A prompt plus its token budget that does not fit the model's context. */
public class ContextLengthExceededException extends IllegalArgumentException {

	private final int promptTokens;

	private final int maxNewTokens;

	private final int contextLength;

	public ContextLengthExceededException(int promptTokens, int maxNewTokens, int contextLength) {
		super(("This model's maximum context length is %d tokens. However, you requested %d tokens "
				+ "(%d in the prompt, %d for the completion). Please reduce the prompt or max_tokens.")
			.formatted(contextLength, promptTokens + maxNewTokens, promptTokens, maxNewTokens));
		this.promptTokens = promptTokens;
		this.maxNewTokens = maxNewTokens;
		this.contextLength = contextLength;
	}

	public int promptTokens() {
		return this.promptTokens;
	}

	public int maxNewTokens() {
		return this.maxNewTokens;
	}

	public int contextLength() {
		return this.contextLength;
	}

}

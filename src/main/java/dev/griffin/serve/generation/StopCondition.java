package dev.griffin.serve.generation;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Decides when generation ends early: an end token or a stop string in the text (the
 * token budget is the generator's). Text that might be the start of a stop string is held
 * back until it is known not to be one, so a streamed stop string never reaches the
 * client.
 */
public final class StopCondition {

	private final Set<Integer> stopTokens = new HashSet<>();

	private final List<String> stopStrings;

	private final int holdBack;

	public StopCondition(SamplingParams params, int[] modelEndTokens) {
		if (!params.ignoreEos()) {
			for (int token : modelEndTokens) {
				this.stopTokens.add(token);
			}
		}
		this.stopTokens.addAll(params.stopTokenIds());
		this.stopStrings = params.stopStrings();
		this.holdBack = this.stopStrings.stream().mapToInt(String::length).max().orElse(1) - 1;
	}

	public boolean isStopToken(int token) {
		return this.stopTokens.contains(token);
	}

	/**
	 * Sets the logits of every token that would end generation to -infinity (while a
	 * sequence is shorter than its {@code min_tokens}).
	 */
	public void ban(float[] logits) {
		for (int token : this.stopTokens) {
			if (token >= 0 && token < logits.length) {
				logits[token] = Float.NEGATIVE_INFINITY;
			}
		}
	}

	/** Index of the first stop string in text, or -1. */
	public int stopStringIndex(String text) {
		int first = -1;
		for (String stop : this.stopStrings) {
			int index = text.indexOf(stop);
			if (index >= 0 && (first < 0 || index < first)) {
				first = index;
			}
		}
		return first;
	}

	/** How many trailing characters may still turn into a stop string. */
	public int holdBack() {
		return this.stopStrings.isEmpty() ? 0 : this.holdBack;
	}

}

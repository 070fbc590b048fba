package dev.griffin.serve.griffin;

/**
 * The density a request runs at when it names none. A prompt shorter than
 * {@code denseBelowTokens} runs dense: GRIFFIN picks the experts from the prompt's own
 * activations, and a short chat question (a few dozen tokens inside its template) does
 * not reach the neurons its answer needs; at density 0.75 the default model kept 59% of
 * the dense model's right answers to such questions (docs/results.md). Longer prompts run
 * at {@code density}. A request that names a density always gets it.
 *
 * @param density the server's density for prompts of at least {@code denseBelowTokens}
 * tokens, in [0, 1]
 * @param denseBelowTokens prompts with fewer tokens run dense (0: none does)
 */
public record DefaultDensity(double density, int denseBelowTokens) {

	/**
	 * The server's default ({@code griffin.generation.default-density} and
	 * {@code .dense-below-prompt-tokens}): see docs/results.md, "Short questions".
	 */
	public static final DefaultDensity SERVER = new DefaultDensity(0.75, 256);

	public DefaultDensity {
		DensitySchedule.checkDensity(density);
		if (denseBelowTokens < 0) {
			throw new IllegalArgumentException("dense-below-prompt-tokens must be >= 0, got " + denseBelowTokens);
		}
	}

	/** The density of a prompt of {@code promptTokens} tokens. */
	public double forPrompt(int promptTokens) {
		return (promptTokens < this.denseBelowTokens) ? 1.0 : this.density;
	}

	@Override
	public String toString() {
		return (this.denseBelowTokens == 0) ? "density %s".formatted(this.density)
				: "density %s, dense below %d prompt tokens".formatted(this.density, this.denseBelowTokens);
	}

}

package dev.griffin.serve.model;

/**
 * Rotary embedding frequency scaling. {@code DEFAULT} leaves the frequencies as they are;
 * {@code LINEAR} divides every frequency by the factor (position interpolation, Gemma 3's
 * global layers); {@code LLAMA3} is Llama 3.1's wavelength-dependent scaling.
 *
 * @param type the scaling kind
 * @param factor how much longer the context is than the original one
 * @param lowFrequencyFactor Llama 3 low-frequency factor
 * @param highFrequencyFactor Llama 3 high-frequency factor
 * @param originalMaxPositionEmbeddings the context length the model was trained with
 */
public record RopeScaling(Type type, double factor, double lowFrequencyFactor, double highFrequencyFactor,
		int originalMaxPositionEmbeddings) {

	public enum Type {

		DEFAULT, LINEAR, LLAMA3

	}

	public static final RopeScaling NONE = new RopeScaling(Type.DEFAULT, 1, 0, 0, 0);

	public RopeScaling {
		if (type == null) {
			throw new IllegalArgumentException("rope scaling type is required");
		}
		if (type == Type.LINEAR && !(factor > 0)) {
			throw new IllegalArgumentException("linear rope scaling needs factor > 0");
		}
		if (type == Type.LLAMA3) {
			if (!(factor > 0) || !(lowFrequencyFactor > 0) || !(highFrequencyFactor > lowFrequencyFactor)
					|| originalMaxPositionEmbeddings <= 0) {
				throw new IllegalArgumentException(
						"llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
								+ "original_max_position_embeddings > 0");
			}
		}
	}

}

package dev.griffin.serve.model;

/**
 * The shape and hyper-parameters of a decoder-only transformer. Validated on
 * construction, so a model built from it never meets an inconsistent configuration.
 *
 * @param architecture the model family
 * @param hiddenSize D, the width of the residual stream
 * @param intermediateSize F, the number of feed-forward neurons per layer
 * @param numberOfLayers decoder layers
 * @param numberOfAttentionHeads query heads H
 * @param numberOfKeyValueHeads key/value heads (H for multi-head, fewer for grouped-query
 * attention)
 * @param headDimension per-head width
 * @param vocabularySize V
 * @param maxPositionEmbeddings the longest context the model supports
 * @param rmsNormEpsilon epsilon of every norm (RMSNorm, or OPT's LayerNorm)
 * @param ropeTheta rotary embedding base
 * @param ropeScaling rotary frequency scaling
 * @param tieWordEmbeddings whether the output projection is the embedding matrix
 * @param attentionBias whether q/k/v projections have biases (Qwen2); for OPT, whether
 * every projection has one (its {@code enable_bias})
 * @param slidingWindow attention window in tokens, 0 for full attention
 * @param bosTokenId beginning-of-sequence token, -1 if none
 * @param eosTokenIds tokens that end generation
 * @param hiddenActivation the activation on the feed-forward block's gate
 * @param windowedLayers which layers attend within {@code slidingWindow} (Gemma 3's local
 * layers), or null when every layer does (none without a window)
 * @param windowedRopeTheta the rotary base of the windowed layers when it differs from
 * {@code ropeTheta} (they take no rope scaling then), else 0
 * @param queryPreAttentionScalar the scores are scaled by its inverse square root (Gemma
 * 3's {@code query_pre_attn_scalar}), 0 for the head dimension
 * @param attentionSoftCap attention scores become {@code cap * tanh(scores / cap)} (Gemma
 * 2), 0 for none
 * @param finalSoftCap the same for the logits, 0 for none
 * @param postNorm whether each layer norms the residual stream after adding each sublayer
 * (OPT-350m's {@code do_layer_norm_before: false}) instead of norming the sublayer's
 * input; such a model has no final norm
 * @param wordEmbeddingSize the width of the token embeddings and of the output head's
 * input (OPT's {@code word_embed_proj_dim}): where it differs from hiddenSize, the
 * embeddings are projected in and the last hidden state out; 0 for hiddenSize
 */
public record ModelConfig(Architecture architecture, int hiddenSize, int intermediateSize, int numberOfLayers,
		int numberOfAttentionHeads, int numberOfKeyValueHeads, int headDimension, int vocabularySize,
		int maxPositionEmbeddings, double rmsNormEpsilon, double ropeTheta, RopeScaling ropeScaling,
		boolean tieWordEmbeddings, boolean attentionBias, int slidingWindow, int bosTokenId, int[] eosTokenIds,
		HiddenActivation hiddenActivation, boolean[] windowedLayers, double windowedRopeTheta,
		double queryPreAttentionScalar, double attentionSoftCap, double finalSoftCap, boolean postNorm,
		int wordEmbeddingSize) {

	public ModelConfig {
		if (architecture == null) {
			throw new IllegalArgumentException("architecture is required");
		}
		if (hiddenActivation == null) {
			throw new IllegalArgumentException("hiddenActivation is required");
		}
		requirePositive("hiddenSize", hiddenSize);
		requirePositive("intermediateSize", intermediateSize);
		requirePositive("numberOfLayers", numberOfLayers);
		requirePositive("numberOfAttentionHeads", numberOfAttentionHeads);
		requirePositive("numberOfKeyValueHeads", numberOfKeyValueHeads);
		requirePositive("headDimension", headDimension);
		requirePositive("vocabularySize", vocabularySize);
		requirePositive("maxPositionEmbeddings", maxPositionEmbeddings);
		if (numberOfAttentionHeads % numberOfKeyValueHeads != 0) {
			throw new IllegalArgumentException(
					"numberOfAttentionHeads (%d) must be a multiple of numberOfKeyValueHeads (%d)"
						.formatted(numberOfAttentionHeads, numberOfKeyValueHeads));
		}
		if (headDimension % 2 != 0) {
			throw new IllegalArgumentException(
					"headDimension must be even for rotary embeddings, got " + headDimension);
		}
		if (!(rmsNormEpsilon > 0) || !(ropeTheta > 0)) {
			throw new IllegalArgumentException("rmsNormEpsilon and ropeTheta must be positive");
		}
		if (slidingWindow < 0) {
			throw new IllegalArgumentException("slidingWindow must be >= 0, got " + slidingWindow);
		}
		if (windowedLayers != null && windowedLayers.length != numberOfLayers) {
			throw new IllegalArgumentException(
					"windowedLayers has %d entries for %d layers".formatted(windowedLayers.length, numberOfLayers));
		}
		if (windowedRopeTheta < 0 || queryPreAttentionScalar < 0 || attentionSoftCap < 0 || finalSoftCap < 0) {
			throw new IllegalArgumentException(
					"windowedRopeTheta, queryPreAttentionScalar and the soft caps must be >= 0");
		}
		if (wordEmbeddingSize < 0) {
			throw new IllegalArgumentException("wordEmbeddingSize must be >= 0, got " + wordEmbeddingSize);
		}
		if ((postNorm || (wordEmbeddingSize != 0 && wordEmbeddingSize != hiddenSize)) && !architecture.isOpt()) {
			throw new IllegalArgumentException("only OPT norms after its sublayers or projects its embeddings");
		}
		wordEmbeddingSize = (wordEmbeddingSize == 0) ? hiddenSize : wordEmbeddingSize;
		windowedLayers = (windowedLayers != null) ? windowedLayers.clone() : null;
		ropeScaling = (ropeScaling != null) ? ropeScaling : RopeScaling.NONE;
		eosTokenIds = (eosTokenIds != null) ? eosTokenIds.clone() : new int[0];
	}

	private static void requirePositive(String name, int value) {
		if (value <= 0) {
			throw new IllegalArgumentException(name + " must be positive, got " + value);
		}
	}

	/**
	 * What the token embeddings are multiplied by: sqrt(D) rounded to float32 for Gemma
	 * (as transformers computes it), else 1.
	 */
	public float embeddingScale() {
		return this.architecture.scalesEmbeddings() ? (float) Math.sqrt(this.hiddenSize) : 1f;
	}

	/**
	 * Whether token embeddings are projected to the residual stream's width and the last
	 * hidden state back (OPT with a {@code word_embed_proj_dim} other than D).
	 */
	public boolean projectsEmbeddings() {
		return this.wordEmbeddingSize != this.hiddenSize;
	}

	/**
	 * Matrices of each feed-forward block: gate, up and down (3), or up and down (2) in a
	 * non-gated block.
	 */
	public int feedForwardMatrices() {
		return this.architecture.gatesFeedForward() ? 3 : 2;
	}

	/** Whether positions enter as learned embeddings (OPT) rather than rotations. */
	public boolean learnsPositions() {
		return this.architecture.isOpt();
	}

	/**
	 * Rows of OPT's learned position table: its first two rows are never used (OPT
	 * offsets every position by 2).
	 */
	public int positionEmbeddingRows() {
		return this.maxPositionEmbeddings + 2;
	}

	/**
	 * Whether layers differ in their attention: some attend within the sliding window
	 * with their own rotary base, the others over the whole context.
	 */
	public boolean mixesLayers() {
		return this.windowedLayers != null;
	}

	/** Whether layer {@code layer} attends within the sliding window. */
	public boolean windowed(int layer) {
		return this.slidingWindow > 0 && (this.windowedLayers == null || this.windowedLayers[layer]);
	}

	/** The attention scores' scale: 1 / sqrt(query_pre_attn_scalar, else Dh). */
	public float attentionScale() {
		double scalar = (this.queryPreAttentionScalar > 0) ? this.queryPreAttentionScalar : this.headDimension;
		return (float) Math.pow(scalar, -0.5);
	}

	@Override
	public boolean[] windowedLayers() {
		return (this.windowedLayers != null) ? this.windowedLayers.clone() : null;
	}

	/** Query heads that share one key/value head. */
	public int queriesPerKeyValueHead() {
		return this.numberOfAttentionHeads / this.numberOfKeyValueHeads;
	}

	@Override
	public int[] eosTokenIds() {
		return this.eosTokenIds.clone();
	}

}

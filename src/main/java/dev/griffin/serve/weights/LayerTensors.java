package dev.griffin.serve.weights;

/**
 * The weights of one decoder layer in Hugging Face layout ({@code [out, in]}), to be read
 * as float32.
 *
 * @param attentionNorm [D]
 * @param query [H*Dh, D]
 * @param key [KVH*Dh, D]
 * @param value [KVH*Dh, D]
 * @param queryBias [H*Dh] or null
 * @param keyBias [KVH*Dh] or null
 * @param valueBias [KVH*Dh] or null
 * @param output [D, H*Dh]
 * @param ffnNorm [D]
 * @param gate [F, D], or null for a non-gated block
 * @param up [F, D]
 * @param down [D, F]
 * @param postAttentionNorm [D], the norm of attention's output, or null
 * @param postFfnNorm [D], the norm of the feed-forward block's output, or null
 * @param queryNorm [Dh], the norm of each query head, or null
 * @param keyNorm [Dh], the norm of each key head, or null
 * @param attentionNormBias [D], the bias of a layer norm (OPT), or null
 * @param outputBias [D] or null
 * @param ffnNormBias [D], the bias of a layer norm (OPT), or null
 * @param upBias [F] or null
 * @param downBias [D] or null
 */
public record LayerTensors(TensorRows attentionNorm, TensorRows query, TensorRows key, TensorRows value,
		TensorRows queryBias, TensorRows keyBias, TensorRows valueBias, TensorRows output, TensorRows ffnNorm,
		TensorRows gate, TensorRows up, TensorRows down, TensorRows postAttentionNorm, TensorRows postFfnNorm,
		TensorRows queryNorm, TensorRows keyNorm, TensorRows attentionNormBias, TensorRows outputBias,
		TensorRows ffnNormBias, TensorRows upBias, TensorRows downBias) {

	/** A layer of RMS norms and a gated block without biases (every family but OPT). */
	public LayerTensors(TensorRows attentionNorm, TensorRows query, TensorRows key, TensorRows value,
			TensorRows queryBias, TensorRows keyBias, TensorRows valueBias, TensorRows output, TensorRows ffnNorm,
			TensorRows gate, TensorRows up, TensorRows down, TensorRows postAttentionNorm, TensorRows postFfnNorm,
			TensorRows queryNorm, TensorRows keyNorm) {
		this(attentionNorm, query, key, value, queryBias, keyBias, valueBias, output, ffnNorm, gate, up, down,
				postAttentionNorm, postFfnNorm, queryNorm, keyNorm, null, null, null, null, null);
	}

	public boolean hasAttentionBias() {
		return this.queryBias != null;
	}

}

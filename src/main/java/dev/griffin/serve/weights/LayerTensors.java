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
 * @param gate [F, D]
 * @param up [F, D]
 * @param down [D, F]
 * @param postAttentionNorm [D], the norm of attention's output, or null
 * @param postFfnNorm [D], the norm of the feed-forward block's output, or null
 * @param queryNorm [Dh], the norm of each query head, or null
 * @param keyNorm [Dh], the norm of each key head, or null
 */
public record LayerTensors(TensorRows attentionNorm, TensorRows query, TensorRows key, TensorRows value,
		TensorRows queryBias, TensorRows keyBias, TensorRows valueBias, TensorRows output, TensorRows ffnNorm,
		TensorRows gate, TensorRows up, TensorRows down, TensorRows postAttentionNorm, TensorRows postFfnNorm,
		TensorRows queryNorm, TensorRows keyNorm) {

	public boolean hasAttentionBias() {
		return this.queryBias != null;
	}

}

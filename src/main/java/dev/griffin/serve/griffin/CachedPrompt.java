package dev.griffin.serve.griffin;

import java.util.concurrent.atomic.AtomicInteger;

import ai.djl.ndarray.NDArray;

/**
 * A processed prompt that an exact repeat can reuse instead of running prefill and expert
 * selection: its tokens, the KV cache of the prompt, the per-layer experts with their
 * gathered weights, and the logits of the last prompt token. Immutable and shared between
 * concurrent sequences; reference counted so that eviction frees native memory only after
 * the last sequence using it is done.
 *
 * @param tokens the prompt's token ids
 * @param keys per layer [KVH, T, Dh]
 * @param values per layer [KVH, T, Dh]
 * @param experts per layer, null entries for dense layers
 * @param lastLogits next-token logits after the prompt
 */
public record CachedPrompt(int[] tokens, NDArray[] keys, NDArray[] values, LayerExperts[] experts, float[] lastLogits,
		AtomicInteger references) {

	public static CachedPrompt create(int[] tokens, NDArray[] keys, NDArray[] values, LayerExperts[] experts,
			float[] lastLogits) {
		return new CachedPrompt(tokens.clone(), keys, values, experts, lastLogits.clone(), new AtomicInteger(1));
	}

	/** Takes a reference; false if the entry was already freed. */
	public boolean retain() {
		return this.references.getAndUpdate((r) -> (r == 0) ? 0 : r + 1) > 0;
	}

	/** Drops a reference; the last one frees the native memory. */
	public void release() {
		if (this.references.decrementAndGet() == 0) {
			for (NDArray array : this.keys) {
				array.close();
			}
			for (NDArray array : this.values) {
				array.close();
			}
			for (LayerExperts layer : this.experts) {
				if (layer != null && layer.gateUp() != null) {
					layer.gateUp().close();
					layer.down().close();
				}
			}
		}
	}

	/** Native and heap bytes this entry holds, for the cache's weigher. */
	public long bytes() {
		long total = (long) this.lastLogits.length * 4 + (long) this.tokens.length * 4;
		for (int i = 0; i < this.keys.length; i++) {
			total += 2 * this.keys[i].getShape().size() * this.keys[i].getDataType().getNumOfBytes();
		}
		for (LayerExperts layer : this.experts) {
			total += (layer != null) ? layer.bytes() : 0;
		}
		return total;
	}

}

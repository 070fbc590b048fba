package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;

/**
 * What every layer of one forward pass shares about its T positions, built once per pass
 * instead of once per layer.
 *
 * @param position absolute position of the first token
 * @param rotary rotary matrices of the T positions
 * @param keyStart first cached position the block attends to (above 0 only with a sliding
 * window)
 * @param mask additive attention mask [T, M] over the last M keys of [keyStart, position
 * + T) (every key before them is visible to every query), or null where every key is
 * visible (a decode step without a sliding window)
 * @param window the sliding window the pass's queries attend within (0: none)
 */
public record Positions(int position, RotaryEmbedding.Angles rotary, int keyStart, NDArray mask, int window) {

	/**
	 * The first cached position the query at {@code position + row} attends to: 0, or
	 * with a sliding window the first key within it.
	 */
	int keyStart(int row) {
		return Attention.keyStart(this.window, this.position + row);
	}

}

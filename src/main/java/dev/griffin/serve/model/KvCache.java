package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Keys and values of one sequence, preallocated for its whole capacity and written in
 * place, so a decode step allocates nothing that outlives it.
 */
public final class KvCache {

	private final NDArray[] keys; // per layer [KVH, capacity, Dh]

	private final NDArray[] values; // per layer [KVH, capacity, Dh]

	private final int capacity;

	public KvCache(ModelConfig config, int capacity, NDManager manager, DataType type) {
		if (capacity <= 0 || capacity > config.maxPositionEmbeddings()) {
			throw new IllegalArgumentException("KV cache capacity %d is outside 1..%d (the model's context length)"
				.formatted(capacity, config.maxPositionEmbeddings()));
		}
		this.capacity = capacity;
		int layers = config.numberOfLayers();
		this.keys = new NDArray[layers];
		this.values = new NDArray[layers];
		Shape shape = new Shape(config.numberOfKeyValueHeads(), capacity, config.headDimension());
		for (int i = 0; i < layers; i++) {
			this.keys[i] = manager.zeros(shape, type);
			this.values[i] = manager.zeros(shape, type);
		}
	}

	public int capacity() {
		return this.capacity;
	}

	/**
	 * Writes k and v ([KVH, T, Dh]) at [position, position + T) of a layer.
	 */
	public void write(int layer, int position, NDArray k, NDArray v) {
		long t = k.getShape().get(1);
		if (position + t > this.capacity) {
			throw new IllegalStateException(
					"KV cache overflow: position %d + %d tokens > capacity %d".formatted(position, t, this.capacity));
		}
		NDIndex slot = new NDIndex().addAllDim().addSliceDim(position, position + t);
		this.keys[layer].set(slot, k);
		this.values[layer].set(slot, v);
	}

	/** A layer's whole key cache, [KVH, capacity, Dh], written in place. */
	NDArray layerKeys(int layer) {
		return this.keys[layer];
	}

	/** A layer's whole value cache, [KVH, capacity, Dh], written in place. */
	NDArray layerValues(int layer) {
		return this.values[layer];
	}

	/** Keys of a layer for positions [from, to): [KVH, to - from, Dh], a view. */
	public NDArray keys(int layer, int from, int to) {
		return this.keys[layer].get(new NDIndex().addAllDim().addSliceDim(from, to));
	}

	/** Values of a layer for positions [from, to): [KVH, to - from, Dh], a view. */
	public NDArray values(int layer, int from, int to) {
		return this.values[layer].get(new NDIndex().addAllDim().addSliceDim(from, to));
	}

}

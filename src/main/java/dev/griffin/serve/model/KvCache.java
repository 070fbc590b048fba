package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Keys and values of one sequence, preallocated for its whole capacity and written in
 * place, so a decode step allocates nothing that outlives it: tensors of its own, or a
 * range of a {@link KvArena} that batched steps attend over together.
 */
public final class KvCache {

	private final NDArray[] keys; // per layer [KVH, capacity, Dh]

	private final NDArray[] values; // per layer [KVH, capacity, Dh]

	private final int capacity;

	private final KvArena arena; // null when the tensors are the cache's own

	private final int base; // the first arena token of the range

	private boolean released;

	public KvCache(ModelConfig config, int capacity, NDManager manager, DataType type) {
		checkCapacity(config, capacity);
		this.capacity = capacity;
		this.arena = null;
		this.base = -1;
		int layers = config.numberOfLayers();
		this.keys = new NDArray[layers];
		this.values = new NDArray[layers];
		Shape shape = new Shape(config.numberOfKeyValueHeads(), capacity, config.headDimension());
		for (int i = 0; i < layers; i++) {
			this.keys[i] = manager.zeros(shape, type);
			this.values[i] = manager.zeros(shape, type);
		}
	}

	/**
	 * A cache of {@code capacity} tokens in a range of {@code arena}, or null when the
	 * arena has no free range that long. Its views of the arena belong to
	 * {@code manager}; {@link #release()} gives the range back.
	 */
	public static KvCache inArena(KvArena arena, ModelConfig config, int capacity, NDManager manager) {
		checkCapacity(config, capacity);
		int base = arena.allocate(capacity);
		return (base < 0) ? null : new KvCache(arena, base, capacity, manager);
	}

	private KvCache(KvArena arena, int base, int capacity, NDManager manager) {
		this.arena = arena;
		this.base = base;
		this.capacity = capacity;
		int layers = arena.layers();
		this.keys = new NDArray[layers];
		this.values = new NDArray[layers];
		try {
			NDIndex range = new NDIndex().addAllDim().addSliceDim(base, base + capacity);
			for (int i = 0; i < layers; i++) {
				this.keys[i] = arena.keys(i).get(range);
				this.keys[i].attach(manager);
				this.values[i] = arena.values(i).get(range);
				this.values[i].attach(manager);
			}
		}
		catch (RuntimeException ex) {
			arena.release(base, capacity);
			throw ex;
		}
	}

	/** Bytes of keys and values of {@code tokens} positions in every layer. */
	public static long bytes(ModelConfig config, DataType type, long tokens) {
		return 2L * config.numberOfLayers() * config.numberOfKeyValueHeads() * config.headDimension() * tokens
				* type.getNumOfBytes();
	}

	private static void checkCapacity(ModelConfig config, int capacity) {
		if (capacity <= 0 || capacity > config.maxPositionEmbeddings()) {
			throw new IllegalArgumentException("KV cache capacity %d is outside 1..%d (the model's context length)"
				.formatted(capacity, config.maxPositionEmbeddings()));
		}
	}

	/** The arena whose range this cache is, or null. */
	public KvArena arena() {
		return this.arena;
	}

	/** The arena token where this cache's position 0 lives (-1 outside an arena). */
	int base() {
		return this.base;
	}

	/**
	 * Gives an arena range back (once the sequence is done; again is a no-op); nothing
	 * for own tensors.
	 */
	public void release() {
		if (this.arena != null && !this.released) {
			this.released = true;
			this.arena.release(this.base, this.capacity);
		}
	}

	public int capacity() {
		return this.capacity;
	}

	/**
	 * Writes k and v ([KVH, T, Dh]) at [position, position + T) of a layer, in the
	 * cache's type (rounded to nearest where that is narrower).
	 */
	public void write(int layer, int position, NDArray k, NDArray v) {
		long t = k.getShape().get(1);
		if (position + t > this.capacity) {
			throw new IllegalStateException(
					"KV cache overflow: position %d + %d tokens > capacity %d".formatted(position, t, this.capacity));
		}
		NDIndex slot = new NDIndex().addAllDim().addSliceDim(position, position + t);
		DataType type = this.keys[layer].getDataType();
		this.keys[layer].set(slot, (k.getDataType() == type) ? k : k.toType(type, false));
		this.values[layer].set(slot, (v.getDataType() == type) ? v : v.toType(type, false));
	}

	/** A layer's whole key cache, [KVH, capacity, Dh], written in place. */
	NDArray layerKeys(int layer) {
		return this.keys[layer];
	}

	/** A layer's whole value cache, [KVH, capacity, Dh], written in place. */
	NDArray layerValues(int layer) {
		return this.values[layer];
	}

	/**
	 * The whole tensor that holds a layer's keys: the cache's own, or its arena's [KVH,
	 * arena tokens, Dh], the cache's position 0 at token {@link #storedFirst()}. Created
	 * whole, so it is contiguous: code that writes its memory directly sees libtorch's
	 * storage.
	 */
	NDArray storedKeys(int layer) {
		return (this.arena == null) ? this.keys[layer] : this.arena.keys(layer);
	}

	/** The whole tensor that holds a layer's values; see {@link #storedKeys}. */
	NDArray storedValues(int layer) {
		return (this.arena == null) ? this.values[layer] : this.arena.values(layer);
	}

	/** The token of {@link #storedKeys} where this cache's position 0 is. */
	int storedFirst() {
		return (this.arena == null) ? 0 : this.base;
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

package dev.griffin.serve.model;

import java.util.Map;
import java.util.TreeMap;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * One preallocated key tensor and one value tensor per layer ({@code [KVH, tokens, Dh]})
 * whose token ranges are the KV caches of the sequences an engine decodes together. A
 * batched step whose rows all live here attends in a few operations per layer (one write,
 * one gather of every row's window, one masked attention) instead of a dozen per row. A
 * cache takes a contiguous range of its whole capacity, first fit; a sequence that finds
 * no range keeps a cache of its own.
 *
 * <p>
 * The tensors are allocated uninitialised, so the operating system commits their pages
 * only as sequences write them; a range a finished sequence leaves holds its old values,
 * which a gather never attends to.
 */
public final class KvArena implements AutoCloseable {

	private final ModelConfig config;

	private final NDManager manager;

	private final NDManager owner;

	private final NDArray[] keys; // per layer [KVH, tokens, Dh]

	private final NDArray[] values;

	private final int tokens;

	private final TreeMap<Integer, Integer> free = new TreeMap<>(); // start -> length

	/**
	 * An arena for sequences of {@code model} (and its variants over the same weights) of
	 * {@code tokens} tokens, in the model's KV cache precision on its device.
	 */
	public KvArena(CausalLm model, int tokens) {
		if (tokens <= 0) {
			throw new IllegalArgumentException("a KV arena needs at least one token, got " + tokens);
		}
		this.config = model.config();
		this.owner = model.manager();
		this.manager = model.manager().newSubManager();
		this.tokens = tokens;
		int layers = this.config.numberOfLayers();
		this.keys = new NDArray[layers];
		this.values = new NDArray[layers];
		DataType type = model.options().cacheDataType();
		Shape shape = new Shape(this.config.numberOfKeyValueHeads(), tokens, this.config.headDimension());
		try {
			for (int i = 0; i < layers; i++) {
				this.keys[i] = this.manager.create(shape, type);
				this.values[i] = this.manager.create(shape, type);
			}
		}
		catch (RuntimeException ex) {
			this.manager.close();
			throw ex;
		}
		this.free.put(0, tokens);
	}

	/**
	 * The tokens of the arena of an engine that runs {@code sequences} at once,
	 * {@code tokensPerSequence} each (at most the model's context), or 0: no arena for
	 * one sequence at a time.
	 */
	public static int tokensFor(ModelConfig config, int sequences, int tokensPerSequence) {
		if (sequences < 2) {
			return 0;
		}
		return Math.toIntExact((long) sequences * Math.min(tokensPerSequence, config.maxPositionEmbeddings()));
	}

	/** Tokens the arena holds. */
	public int tokens() {
		return this.tokens;
	}

	/** Bytes of its keys and values. */
	public long bytes() {
		return KvCache.bytes(this.config, this.keys[0].getDataType(), this.tokens);
	}

	/** Whether sequences of {@code model} can keep their caches here. */
	public boolean serves(CausalLm model) {
		return model.manager() == this.owner && model.config().equals(this.config);
	}

	/**
	 * The first free range of {@code capacity} tokens, taken: its first token, or -1 when
	 * no free range is that long.
	 */
	public synchronized int allocate(int capacity) {
		if (capacity <= 0) {
			throw new IllegalArgumentException("capacity must be positive, got " + capacity);
		}
		for (Map.Entry<Integer, Integer> range : this.free.entrySet()) {
			int start = range.getKey();
			int length = range.getValue();
			if (length >= capacity) {
				this.free.remove(start);
				if (length > capacity) {
					this.free.put(start + capacity, length - capacity);
				}
				return start;
			}
		}
		return -1;
	}

	/** Gives back a range {@link #allocate} returned, merged with free neighbours. */
	public synchronized void release(int start, int capacity) {
		if (start < 0 || capacity <= 0 || start + capacity > this.tokens) {
			throw new IllegalArgumentException(
					"range [%d, %d) is outside the arena's %d tokens".formatted(start, start + capacity, this.tokens));
		}
		Map.Entry<Integer, Integer> before = this.free.floorEntry(start);
		Map.Entry<Integer, Integer> after = this.free.ceilingEntry(start);
		if ((before != null && before.getKey() + before.getValue() > start)
				|| (after != null && after.getKey() < start + capacity)) {
			throw new IllegalStateException("range [%d, %d) is already free".formatted(start, start + capacity));
		}
		int from = start;
		int length = capacity;
		if (before != null && before.getKey() + before.getValue() == start) {
			from = before.getKey();
			length += before.getValue();
			this.free.remove(before.getKey());
		}
		if (after != null && after.getKey() == start + capacity) {
			length += after.getValue();
			this.free.remove(after.getKey());
		}
		this.free.put(from, length);
	}

	/** Free tokens, in however many ranges. */
	public synchronized int freeTokens() {
		return this.free.values().stream().mapToInt(Integer::intValue).sum();
	}

	int layers() {
		return this.keys.length;
	}

	/** A layer's keys, [KVH, tokens, Dh]. */
	NDArray keys(int layer) {
		return this.keys[layer];
	}

	/** A layer's values, [KVH, tokens, Dh]. */
	NDArray values(int layer) {
		return this.values[layer];
	}

	@Override
	public void close() {
		this.manager.close();
	}

}

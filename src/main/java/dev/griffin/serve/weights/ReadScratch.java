package dev.griffin.serve.weights;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The bytes a checkpoint file's positional reads land in, reused from one read to the
 * next while a model loads. A fresh buffer per read made every block of rows garbage, and
 * the Java heap grew to hold it: loading SmolLM2 grew resident memory by 1.35-1.4x its
 * float32 weights, most of the excess pages the collector's young generation had touched.
 * The buffer is direct, so a read fills it without the JDK's hidden copy through a
 * temporary direct buffer of the same size. Not thread-safe: its file reads under its own
 * lock.
 */
final class ReadScratch {

	/**
	 * Reads larger than this (whole large tensors, which loading never asks for) get
	 * their own buffer.
	 */
	static final int LIMIT = 32 << 20;

	private static final int MINIMUM = 1 << 16;

	private ByteBuffer buffer;

	/**
	 * A little-endian buffer with exactly {@code length} bytes from position 0 to its
	 * limit.
	 */
	ByteBuffer take(int length) {
		if (length > LIMIT) {
			return ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
		}
		if (this.buffer == null || this.buffer.capacity() < length) {
			int capacity = Math.min(LIMIT, Math.max(MINIMUM, Integer.highestOneBit(Math.max(1, length - 1)) << 1));
			this.buffer = ByteBuffer.allocateDirect(capacity).order(ByteOrder.LITTLE_ENDIAN);
		}
		this.buffer.clear().limit(length);
		return this.buffer;
	}

	/** Lets the buffer go (its memory returns when the collector frees it). */
	void release() {
		this.buffer = null;
	}

}

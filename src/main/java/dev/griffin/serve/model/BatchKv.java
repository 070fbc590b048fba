package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;

/**
 * The KV side of one batched decode step, shared by every layer: each row's position,
 * cache and first attended position, and, when every row's cache is a range of one
 * {@link KvArena} and the longest window is at most {@link #GATHER_LIMIT} tokens, the
 * indices of the gathered form of attention, made once for all layers.
 *
 * <p>
 * The gathered form pads every row's window to the longest one (W) and copies it out of
 * the arena once per layer, then attends in one masked product; the per-row form reads
 * each window in place but costs about a dozen libtorch operations per row and layer. On
 * SmolLM2-135M the copy of a 1,024-token window (KV bytes read and written once more)
 * costs about what a row's operations do, so longer windows take the per-row form.
 */
final class BatchKv {

	/** The longest window, in tokens, the gathered form pads rows to. */
	static final int GATHER_LIMIT = 1024;

	final int[] positions;

	final KvCache[] caches;

	final long[] starts;

	/** The arena every row's cache lives in, or null for the per-row form. */
	final KvArena arena;

	/** The arena token of each row's new key and value, [B] int64 (gathered form). */
	final NDArray write;

	/** Row after row, the W arena tokens each row attends over, [B*W] int64. */
	final NDArray gather;

	/** Gathered tokens outside a row's window, [B, 1, 1, W] boolean. */
	final NDArray masked;

	BatchKv(int[] positions, KvCache[] caches, int slidingWindow, NDManager manager) {
		int b = positions.length;
		this.positions = positions;
		this.caches = caches;
		this.starts = new long[b];
		int width = 0;
		KvArena shared = caches[0].arena();
		for (int i = 0; i < b; i++) {
			if (positions[i] >= caches[i].capacity()) {
				throw new IllegalStateException("KV cache overflow: position %d of a cache of %d"
					.formatted(positions[i], caches[i].capacity()));
			}
			this.starts[i] = Attention.keyStart(slidingWindow, positions[i]);
			width = Math.max(width, positions[i] - (int) this.starts[i] + 1);
			if (caches[i].arena() != shared) {
				shared = null;
			}
		}
		if (shared == null || width > GATHER_LIMIT) {
			this.arena = null;
			this.write = null;
			this.gather = null;
			this.masked = null;
			return;
		}
		this.arena = shared;
		long[] write = new long[b];
		long[] gather = new long[b * width];
		boolean[] masked = new boolean[b * width];
		for (int i = 0; i < b; i++) {
			int base = caches[i].base();
			write[i] = base + positions[i];
			int first = positions[i] - width + 1; // the position of column 0
			for (int j = 0; j < width; j++) {
				int position = first + j;
				boolean outside = position < this.starts[i];
				masked[i * width + j] = outside;
				// a masked column reads the row's newest token: written, finite, never
				// attended
				gather[i * width + j] = base + (outside ? positions[i] : position);
			}
		}
		this.write = manager.create(write);
		this.gather = manager.create(gather);
		this.masked = manager.create(masked, new Shape(b, 1, 1, width));
	}

	int rows() {
		return this.positions.length;
	}

}

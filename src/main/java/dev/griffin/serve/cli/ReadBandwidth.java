package dev.griffin.serve.cli;

import java.util.function.Supplier;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * The machine's memory read bandwidth as libtorch sees it: the fastest of several reads
 * of a 1 GiB float32 buffer, far larger than any cache, on the engine's threads, each
 * read either a sum or a matrix-vector product (the buffer as 1024-wide rows times a
 * vector). Which of the two reads faster depends on the CPU: on some the sum's reduction
 * is slower than memory (about 21 against 29 GB/s measured on one 2-core machine), and a
 * probe that is slower than the weights' own products would overstate what fraction of
 * the machine a decode step uses. A decode step that reads its weights once cannot run
 * faster than this.
 */
final class ReadBandwidth {

	private static final long BYTES = 1L << 30;

	private static final int ROW = 1024;

	private static final int READS = 5;

	private ReadBandwidth() {
	}

	/** GB/s. */
	static double measure() {
		try (NDManager manager = NDManager.newBaseManager()) {
			NDArray buffer = manager.ones(new Shape(BYTES / 4), DataType.FLOAT32);
			NDArray rows = buffer.reshape(BYTES / 4 / ROW, ROW);
			NDArray vector = manager.ones(new Shape(ROW, 1), DataType.FLOAT32);
			buffer.sum().close(); // touch every page
			rows.matMul(vector).close();
			double best = 0;
			for (int i = 0; i < READS; i++) {
				best = Math.max(best, rate(() -> buffer.sum()));
				best = Math.max(best, rate(() -> rows.matMul(vector)));
			}
			return best;
		}
	}

	private static double rate(Supplier<NDArray> read) {
		long start = System.nanoTime();
		read.get().close();
		return BYTES / ((System.nanoTime() - start) / 1e9) / 1e9;
	}

}

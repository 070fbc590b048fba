package dev.griffin.serve.cli;

import java.util.Arrays;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * The machine's memory read bandwidth as libtorch sees it: the best of several sums of a
 * 1 GiB float32 buffer, far larger than any cache, on the engine's threads. A decode step
 * that reads its weights once cannot run faster than this.
 */
final class ReadBandwidth {

	private static final long BYTES = 1L << 30;

	private ReadBandwidth() {
	}

	/** GB/s. */
	static double measure() {
		try (NDManager manager = NDManager.newBaseManager()) {
			NDArray buffer = manager.ones(new Shape(BYTES / 4), DataType.FLOAT32);
			buffer.sum().close(); // touch every page
			double[] rates = new double[5];
			for (int i = 0; i < rates.length; i++) {
				long start = System.nanoTime();
				buffer.sum().close();
				rates[i] = BYTES / ((System.nanoTime() - start) / 1e9) / 1e9;
			}
			return Arrays.stream(rates).max().orElseThrow();
		}
	}

}

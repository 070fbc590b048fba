package dev.griffin.serve.weights;

import java.util.Arrays;

/**
 * A dequantised tensor in row-major order, the hand-off between loading and compute.
 *
 * @param data the values, row-major
 * @param shape outermost dimension first
 */
public record FloatTensor(float[] data, long[] shape) {

	public FloatTensor {
		long elements = Arrays.stream(shape).reduce(1, Math::multiplyExact);
		if (elements != data.length) {
			throw new IllegalArgumentException(
					"shape %s needs %d values, got %d".formatted(Arrays.toString(shape), elements, data.length));
		}
	}

	public int rows() {
		return (int) this.shape[0];
	}

	@Override
	public String toString() {
		return "FloatTensor" + Arrays.toString(this.shape);
	}

}

package dev.griffin.serve.weights;

import java.util.Arrays;
import java.util.function.IntUnaryOperator;

/**
 * A checkpoint tensor read a block of rows (its outermost dimension) at a time, so that a
 * large one is never whole on the Java heap.
 */
public final class TensorRows {

	/**
	 * Reads rows [from, from + count) as float32 into {@code out[0, count * columns)}.
	 */
	@FunctionalInterface
	interface Reader {

		void read(long from, int count, float[] out);

	}

	private final long[] shape;

	private final Reader reader;

	TensorRows(long[] shape, Reader reader) {
		if (shape.length == 0 || shape[0] > Integer.MAX_VALUE) {
			throw new IllegalArgumentException("cannot read %s by rows".formatted(Arrays.toString(shape)));
		}
		this.shape = shape.clone();
		this.reader = reader;
	}

	/** Outermost dimension first. */
	public long[] shape() {
		return this.shape.clone();
	}

	public int rows() {
		return (int) this.shape[0];
	}

	/** Values per row (1 for a vector). */
	public long columns() {
		return Arrays.stream(this.shape).skip(1).reduce(1, Math::multiplyExact);
	}

	/** Reads rows [from, from + count) into {@code out[0, count * columns())}. */
	public void read(int from, int count, float[] out) {
		if (from < 0 || count < 0 || from + count > rows() || (long) count * columns() > out.length) {
			throw new IllegalArgumentException("rows [%d, %d) of %s into %d values".formatted(from, from + count,
					Arrays.toString(this.shape), out.length));
		}
		this.reader.read(from, count, out);
	}

	/** The whole tensor (for the small ones a checkpoint transforms as it reads them). */
	public FloatTensor readAll() {
		float[] data = new float[Math.toIntExact(rows() * columns())];
		read(0, rows(), data);
		return new FloatTensor(data, this.shape);
	}

	/** A tensor already in memory, read the same way. */
	public static TensorRows of(FloatTensor tensor) {
		long columns = tensor.data().length / tensor.shape()[0];
		return new TensorRows(tensor.shape(), (from, count, out) -> System.arraycopy(tensor.data(),
				Math.toIntExact(from * columns), out, 0, Math.toIntExact(count * columns)));
	}

	/** This tensor times {@code factor}, as it is read. */
	public TensorRows scaled(float factor) {
		if (factor == 1f) {
			return this;
		}
		long columns = columns();
		return new TensorRows(this.shape, (from, count, out) -> {
			this.reader.read(from, count, out);
			for (int i = 0; i < count * columns; i++) {
				out[i] *= factor;
			}
		});
	}

	/** This tensor plus {@code offset}, as it is read. */
	public TensorRows plus(float offset) {
		long columns = columns();
		return new TensorRows(this.shape, (from, count, out) -> {
			this.reader.read(from, count, out);
			for (int i = 0; i < count * columns; i++) {
				out[i] += offset;
			}
		});
	}

	/**
	 * This tensor with its rows reordered: row {@code r} of the result is row
	 * {@code source.applyAsInt(r)} of this one. Read a row at a time into one reused row,
	 * so reordering makes no copy of the tensor.
	 */
	public TensorRows rowsFrom(IntUnaryOperator source) {
		int columns = Math.toIntExact(columns());
		float[] row = new float[columns];
		return new TensorRows(this.shape, (from, count, out) -> {
			for (int i = 0; i < count; i++) {
				this.reader.read(source.applyAsInt(Math.toIntExact(from + i)), 1, row);
				System.arraycopy(row, 0, out, i * columns, columns);
			}
		});
	}

	@Override
	public String toString() {
		return "TensorRows" + Arrays.toString(this.shape);
	}

}

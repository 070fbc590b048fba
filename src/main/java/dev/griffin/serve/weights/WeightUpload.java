package dev.griffin.serve.weights;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Copies float32 values into tensors that libtorch owns, in the model's precision, a
 * block of rows at a time through one reused staging buffer. DJL's {@code create} of a
 * Java array leaves a CPU tensor borrowing a Java direct buffer, so float32 weights would
 * count against {@code -XX:MaxDirectMemorySize} (a 1.5B model needs 6 GB of it), and a
 * half-precision tensor would pass through a float32 copy of its whole size.
 */
final class WeightUpload implements AutoCloseable {

	/**
	 * Float32 values per staged block (4 MiB): the Java array and the staging buffer are
	 * both this size, a fixed cost of loading that a larger block only adds to the peak.
	 */
	static final int BLOCK = 1 << 20;

	private final NDManager manager;

	private final DataType type;

	private final int block;

	private ByteBuffer staging;

	private float[] rows;

	private long bytes;

	WeightUpload(NDManager manager, DataType type) {
		this(manager, type, BLOCK);
	}

	/**
	 * @param block float32 values per staged block
	 */
	WeightUpload(NDManager manager, DataType type, int block) {
		this.manager = manager;
		this.type = type;
		this.block = block;
	}

	/** Bytes of the tensors made so far. */
	long bytes() {
		return this.bytes;
	}

	/**
	 * The tensors read from their checkpoint a block of rows at a time and stacked along
	 * their outermost dimension.
	 */
	NDArray stacked(TensorRows... parts) {
		long[] shape = parts[0].shape();
		shape[0] = 0;
		for (TensorRows part : parts) {
			long[] trailing = part.shape();
			trailing[0] = 0;
			if (!Arrays.equals(trailing, shape)) {
				throw new IllegalArgumentException("cannot stack %s".formatted(Arrays.toString(parts)));
			}
		}
		for (TensorRows part : parts) {
			shape[0] += part.rows();
		}
		NDArray target = allocate(shape);
		long row = 0;
		for (TensorRows part : parts) {
			int columns = Math.toIntExact(part.columns());
			int step = step(columns);
			// one size for every shape (a block, or one row wider than a block), so the
			// array is made once per model rather than again for every new width
			int capacity = Math.max(this.block, columns);
			if (this.rows == null || this.rows.length < capacity) {
				this.rows = new float[capacity];
			}
			for (int from = 0; from < part.rows(); from += step) {
				int count = Math.min(step, part.rows() - from);
				part.read(from, count, this.rows);
				copy(target, row + from, this.rows, count, columns);
			}
			row += part.rows();
		}
		return target;
	}

	private int step(int columns) {
		return Math.max(1, this.block / Math.max(1, columns));
	}

	private NDArray allocate(long[] shape) {
		NDArray target = this.manager.create(new Shape(shape), this.type);
		this.bytes += target.size() * this.type.getNumOfBytes();
		return target;
	}

	/** Copies rows [row, row + count) of {@code target} from {@code values}. */
	private void copy(NDArray target, long row, float[] values, int count, int columns) {
		int size = Math.multiplyExact(count, columns);
		if (this.staging == null || this.staging.capacity() < 4 * size) {
			this.staging = ByteBuffer.allocateDirect(Math.multiplyExact(4, Math.max(size, this.block)))
				.order(ByteOrder.nativeOrder());
		}
		this.staging.clear();
		this.staging.asFloatBuffer().put(values, 0, size);
		ByteBuffer block = this.staging.duplicate().order(ByteOrder.nativeOrder()).limit(4 * size);
		long[] shape = target.getShape().getShape().clone();
		shape[0] = count;
		// the staged tensor borrows the buffer; set copies it into the target
		try (NDArray staged = this.manager.create(block, new Shape(shape), DataType.FLOAT32)) {
			target.set(new NDIndex().addSliceDim(row, row + count), staged);
		}
	}

	/** Drops the staging buffers (the tensors made stay with their manager). */
	@Override
	public void close() {
		this.staging = null;
		this.rows = null;
	}

}

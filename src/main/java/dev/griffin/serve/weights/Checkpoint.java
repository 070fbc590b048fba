package dev.griffin.serve.weights;

import java.nio.file.Path;
import java.util.Arrays;

import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.weights.WeightNames.Format;
import dev.griffin.serve.weights.WeightNames.LayerTensor;

/**
 * An opened checkpoint: its configuration and tensors, each read a block of rows at a
 * time as it is copied to the device, so that loading holds no whole float32 copy of a
 * large tensor on the Java heap. Every tensor is checked against the shape the
 * configuration implies.
 */
public abstract class Checkpoint implements AutoCloseable {

	private final Path path;

	private final Format format;

	protected Checkpoint(Path path, Format format) {
		this.path = path;
		this.format = format;
	}

	public Path path() {
		return this.path;
	}

	public Format format() {
		return this.format;
	}

	public abstract ModelConfig config();

	/** Whether the checkpoint holds a tensor of this name. */
	protected abstract boolean contains(String name);

	/** The shape of a tensor; the caller has checked that it exists. */
	protected abstract long[] shapeOf(String name);

	/**
	 * Reads rows [from, from + count) of a tensor (its outermost dimension) as float32
	 * into {@code out[0, count * columns)}; the caller has checked that it exists.
	 */
	protected abstract void readRows(String name, long from, int count, float[] out);

	/** The file a tensor lives in, for error messages. */
	protected abstract Path fileOf(String name);

	/** A tensor to read a block of rows at a time, its shape checked. */
	public TensorRows rows(String name, long... expectedShape) {
		if (!contains(name)) {
			throw new CheckpointException("%s: missing tensor '%s' (expected shape %s)".formatted(this.path, name,
					Arrays.toString(expectedShape)));
		}
		long[] shape = shapeOf(name);
		if (!Arrays.equals(shape, expectedShape)) {
			throw new CheckpointException("%s: tensor '%s' has shape %s, expected %s".formatted(fileOf(name), name,
					Arrays.toString(shape), Arrays.toString(expectedShape)));
		}
		return new TensorRows(shape, (from, count, out) -> readRows(name, from, count, out));
	}

	/** The token embedding, read in blocks of rows: it is the largest tensor. */
	public TensorRows embedding() {
		ModelConfig c = config();
		return rows(WeightNames.embedding(this.format), c.vocabularySize(), c.hiddenSize());
	}

	public TensorRows finalNorm() {
		return norm(rows(WeightNames.finalNorm(this.format), config().hiddenSize()));
	}

	/** An RMSNorm's weight as the norm multiplies by it. */
	protected TensorRows norm(TensorRows stored) {
		return stored;
	}

	/**
	 * The output projection, read in blocks of rows, or null when it is tied to the
	 * embedding.
	 */
	public TensorRows lmHead() {
		ModelConfig c = config();
		String name = WeightNames.lmHead(this.format);
		if (c.tieWordEmbeddings() || (this.format == Format.GGUF && !contains(name))) {
			return null;
		}
		return rows(name, c.vocabularySize(), c.hiddenSize());
	}

	public LayerTensors layer(int i) {
		ModelConfig c = config();
		long d = c.hiddenSize();
		long f = c.intermediateSize();
		long dh = c.headDimension();
		long q = (long) c.numberOfAttentionHeads() * dh;
		long kv = (long) c.numberOfKeyValueHeads() * dh;
		boolean bias = c.attentionBias();
		boolean outputs = c.architecture().normsSublayerOutputs();
		boolean queryKey = c.architecture().normsQueryKey();
		return new LayerTensors(norm(layerTensor(i, LayerTensor.ATTENTION_NORM, d)), query(i, q, d), key(i, kv, d),
				layerTensor(i, LayerTensor.VALUE, kv, d), bias ? layerTensor(i, LayerTensor.QUERY_BIAS, q) : null,
				bias ? layerTensor(i, LayerTensor.KEY_BIAS, kv) : null,
				bias ? layerTensor(i, LayerTensor.VALUE_BIAS, kv) : null, layerTensor(i, LayerTensor.OUTPUT, d, q),
				norm(layerTensor(i, outputs ? LayerTensor.PRE_FFN_NORM : LayerTensor.FFN_NORM, d)),
				layerTensor(i, LayerTensor.GATE, f, d), layerTensor(i, LayerTensor.UP, f, d),
				layerTensor(i, LayerTensor.DOWN, d, f),
				outputs ? norm(layerTensor(i, LayerTensor.POST_ATTENTION_NORM, d)) : null,
				outputs ? norm(layerTensor(i, LayerTensor.POST_FFN_NORM, d)) : null,
				queryKey ? norm(layerTensor(i, LayerTensor.QUERY_NORM, dh)) : null,
				queryKey ? norm(layerTensor(i, LayerTensor.KEY_NORM, dh)) : null);
	}

	protected TensorRows query(int layer, long rows, long columns) {
		return layerTensor(layer, LayerTensor.QUERY, rows, columns);
	}

	protected TensorRows key(int layer, long rows, long columns) {
		return layerTensor(layer, LayerTensor.KEY, rows, columns);
	}

	protected final TensorRows layerTensor(int layer, LayerTensor kind, long... shape) {
		return rows(WeightNames.layer(this.format, layer, kind), shape);
	}

	@Override
	public abstract void close();

}

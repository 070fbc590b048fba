package dev.griffin.serve.weights;

import java.nio.file.Path;
import java.util.Arrays;

import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.weights.WeightNames.Format;
import dev.griffin.serve.weights.WeightNames.LayerTensor;

/**
 * An opened checkpoint: its configuration and tensors, read one at a time so that a model
 * never holds more than one layer of float32 copies on the Java heap. Every tensor is
 * checked against the shape the configuration implies.
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

	/** Reads a tensor; the caller has checked that it exists. */
	protected abstract FloatTensor read(String name);

	/** The file a tensor lives in, for error messages. */
	protected abstract Path fileOf(String name);

	/** Reads a tensor and checks its shape. */
	public FloatTensor tensor(String name, long... expectedShape) {
		if (!contains(name)) {
			throw new CheckpointException("%s: missing tensor '%s' (expected shape %s)".formatted(this.path, name,
					Arrays.toString(expectedShape)));
		}
		FloatTensor tensor = read(name);
		if (!Arrays.equals(tensor.shape(), expectedShape)) {
			throw new CheckpointException("%s: tensor '%s' has shape %s, expected %s".formatted(fileOf(name), name,
					Arrays.toString(tensor.shape()), Arrays.toString(expectedShape)));
		}
		return tensor;
	}

	public FloatTensor embedding() {
		ModelConfig c = config();
		return tensor(WeightNames.embedding(this.format), c.vocabularySize(), c.hiddenSize());
	}

	public FloatTensor finalNorm() {
		return tensor(WeightNames.finalNorm(this.format), config().hiddenSize());
	}

	/** The output projection, or null when it is tied to the embedding. */
	public FloatTensor lmHead() {
		ModelConfig c = config();
		String name = WeightNames.lmHead(this.format);
		if (c.tieWordEmbeddings() || (this.format == Format.GGUF && !contains(name))) {
			return null;
		}
		return tensor(name, c.vocabularySize(), c.hiddenSize());
	}

	public LayerTensors layer(int i) {
		ModelConfig c = config();
		long d = c.hiddenSize();
		long f = c.intermediateSize();
		long q = (long) c.numberOfAttentionHeads() * c.headDimension();
		long kv = (long) c.numberOfKeyValueHeads() * c.headDimension();
		boolean bias = c.attentionBias();
		return new LayerTensors(layerTensor(i, LayerTensor.ATTENTION_NORM, d), query(i, q, d), key(i, kv, d),
				layerTensor(i, LayerTensor.VALUE, kv, d), bias ? layerTensor(i, LayerTensor.QUERY_BIAS, q) : null,
				bias ? layerTensor(i, LayerTensor.KEY_BIAS, kv) : null,
				bias ? layerTensor(i, LayerTensor.VALUE_BIAS, kv) : null, layerTensor(i, LayerTensor.OUTPUT, d, q),
				layerTensor(i, LayerTensor.FFN_NORM, d), layerTensor(i, LayerTensor.GATE, f, d),
				layerTensor(i, LayerTensor.UP, f, d), layerTensor(i, LayerTensor.DOWN, d, f));
	}

	protected FloatTensor query(int layer, long rows, long columns) {
		return layerTensor(layer, LayerTensor.QUERY, rows, columns);
	}

	protected FloatTensor key(int layer, long rows, long columns) {
		return layerTensor(layer, LayerTensor.KEY, rows, columns);
	}

	protected final FloatTensor layerTensor(int layer, LayerTensor kind, long... shape) {
		return tensor(WeightNames.layer(this.format, layer, kind), shape);
	}

	@Override
	public abstract void close();

}

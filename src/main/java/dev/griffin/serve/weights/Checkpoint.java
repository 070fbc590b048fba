package dev.griffin.serve.weights;

import java.nio.file.Path;
import java.util.Arrays;

import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.weights.WeightNames.Format;
import dev.griffin.serve.weights.WeightNames.LayerTensor;
import dev.griffin.serve.weights.WeightNames.OptTensor;

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

	/** The token embedding [V, E], read in blocks of rows: it is the largest tensor. */
	public TensorRows embedding() {
		ModelConfig c = config();
		String name = opt() ? WeightNames.optDecoder(optDecoder(), "embed_tokens.weight")
				: WeightNames.embedding(this.format);
		return rows(name, c.vocabularySize(), c.wordEmbeddingSize());
	}

	/** The final norm's weight, or null where the model has none (a post-norm OPT). */
	public TensorRows finalNorm() {
		ModelConfig c = config();
		if (opt()) {
			return c.postNorm() ? null
					: rows(WeightNames.optDecoder(optDecoder(), "final_layer_norm.weight"), c.hiddenSize());
		}
		return norm(rows(WeightNames.finalNorm(this.format), c.hiddenSize()));
	}

	/** The final layer norm's bias (OPT), or null. */
	public TensorRows finalNormBias() {
		ModelConfig c = config();
		return (opt() && !c.postNorm())
				? rows(WeightNames.optDecoder(optDecoder(), "final_layer_norm.bias"), c.hiddenSize()) : null;
	}

	/** OPT's learned positions [P + 2, D]; null for a model whose positions rotate. */
	public TensorRows positionEmbedding() {
		ModelConfig c = config();
		return opt() ? rows(WeightNames.optDecoder(optDecoder(), "embed_positions.weight"), c.positionEmbeddingRows(),
				c.hiddenSize()) : null;
	}

	/** The projection of embeddings to the residual stream [D, E], or null. */
	public TensorRows projectIn() {
		ModelConfig c = config();
		return c.projectsEmbeddings()
				? rows(WeightNames.optDecoder(optDecoder(), "project_in.weight"), c.hiddenSize(), c.wordEmbeddingSize())
				: null;
	}

	/** The projection of the last hidden state to the head's input [E, D], or null. */
	public TensorRows projectOut() {
		ModelConfig c = config();
		return c.projectsEmbeddings() ? rows(WeightNames.optDecoder(optDecoder(), "project_out.weight"),
				c.wordEmbeddingSize(), c.hiddenSize()) : null;
	}

	private boolean opt() {
		return config().architecture().isOpt();
	}

	/** The prefix an OPT checkpoint's decoder tensors carry. */
	private String optDecoder() {
		for (String prefix : WeightNames.OPT_DECODER_PREFIXES) {
			if (contains(WeightNames.optDecoder(prefix, "embed_tokens.weight"))) {
				return prefix;
			}
		}
		throw new CheckpointException("%s: no OPT decoder: neither of %s".formatted(this.path,
				WeightNames.OPT_DECODER_PREFIXES.stream()
					.map((prefix) -> WeightNames.optDecoder(prefix, "embed_tokens.weight"))
					.toList()));
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
		return rows(name, c.vocabularySize(), c.wordEmbeddingSize());
	}

	public LayerTensors layer(int i) {
		ModelConfig c = config();
		if (opt()) {
			return optLayer(i);
		}
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

	/**
	 * An OPT layer: layer norms with biases, biases on every projection where enabled.
	 */
	private LayerTensors optLayer(int i) {
		ModelConfig c = config();
		String decoder = optDecoder();
		long d = c.hiddenSize();
		long f = c.intermediateSize();
		long q = (long) c.numberOfAttentionHeads() * c.headDimension();
		boolean bias = c.attentionBias();
		return new LayerTensors(optTensor(decoder, i, OptTensor.ATTENTION_NORM, d),
				optTensor(decoder, i, OptTensor.QUERY, q, d), optTensor(decoder, i, OptTensor.KEY, q, d),
				optTensor(decoder, i, OptTensor.VALUE, q, d),
				bias ? optTensor(decoder, i, OptTensor.QUERY_BIAS, q) : null,
				bias ? optTensor(decoder, i, OptTensor.KEY_BIAS, q) : null,
				bias ? optTensor(decoder, i, OptTensor.VALUE_BIAS, q) : null,
				optTensor(decoder, i, OptTensor.OUTPUT, d, q), optTensor(decoder, i, OptTensor.FFN_NORM, d), null,
				optTensor(decoder, i, OptTensor.UP, f, d), optTensor(decoder, i, OptTensor.DOWN, d, f), null, null,
				null, null, optTensor(decoder, i, OptTensor.ATTENTION_NORM_BIAS, d),
				bias ? optTensor(decoder, i, OptTensor.OUTPUT_BIAS, d) : null,
				optTensor(decoder, i, OptTensor.FFN_NORM_BIAS, d),
				bias ? optTensor(decoder, i, OptTensor.UP_BIAS, f) : null,
				bias ? optTensor(decoder, i, OptTensor.DOWN_BIAS, d) : null);
	}

	private TensorRows optTensor(String decoder, int layer, OptTensor kind, long... shape) {
		return rows(WeightNames.optLayer(decoder, layer, kind), shape);
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

package dev.griffin.serve.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.BiFunction;
import java.util.function.IntConsumer;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;

import dev.griffin.serve.weights.Checkpoint;
import dev.griffin.serve.weights.FloatTensor;
import dev.griffin.serve.weights.LayerTensors;

/**
 * A Llama-family causal language model on DJL NDArrays. Immutable once built and shared
 * by all sequences; per-sequence state (KV cache, feed-forward state) is passed in by the
 * caller.
 */
public final class CausalLm {

	private final ModelConfig config;

	private final ModelOptions options;

	private final NDManager manager;

	private final NDArray embedding; // [V, D]

	private final NDArray lmHead; // [V, D], the embedding itself when tied

	private final RmsNorm finalNorm;

	private final RotaryEmbedding rotary;

	private final List<DecoderLayer> layers;

	private CausalLm(ModelConfig config, ModelOptions options, NDManager manager, NDArray embedding, NDArray lmHead,
			RmsNorm finalNorm, RotaryEmbedding rotary, List<DecoderLayer> layers) {
		this.config = config;
		this.options = options;
		this.manager = manager;
		this.embedding = embedding;
		this.lmHead = lmHead;
		this.finalNorm = finalNorm;
		this.rotary = rotary;
		this.layers = Collections.unmodifiableList(layers);
	}

	/**
	 * Builds the dense model from a checkpoint, one layer at a time.
	 * @param progress told the number of layers loaded so far
	 */
	public static CausalLm load(Checkpoint checkpoint, ModelOptions options, NDManager manager, IntConsumer progress) {
		ModelConfig config = checkpoint.config();
		DataType type = options.dtype().dataType();
		Device device = options.djlDevice();
		NDManager owner = manager.newSubManager(device);
		try {
			NDArray embedding = upload(owner, checkpoint.embedding(), type);
			FloatTensor head = checkpoint.lmHead();
			NDArray lmHead = (head != null) ? upload(owner, head, type) : embedding;
			RmsNorm finalNorm = new RmsNorm(upload(owner, checkpoint.finalNorm(), type), config.rmsNormEpsilon());
			RotaryEmbedding rotary = new RotaryEmbedding(config, owner, options.attentionDataType());
			List<DecoderLayer> layers = new ArrayList<>();
			for (int i = 0; i < config.numberOfLayers(); i++) {
				LayerTensors t = checkpoint.layer(i);
				// An exact (power-of-two) score scale moves into the query rows: one
				// operation less per layer.
				boolean fold = Attention.scaleFoldsExactly(config);
				float scale = fold ? Attention.scale(config) : 1f;
				// [(H+2KVH)*Dh, D]
				NDArray qkv = upload(owner, type, scaled(t.query(), scale), t.key(), t.value());
				NDArray qkvBias = t.hasAttentionBias()
						? upload(owner, type, scaled(t.queryBias(), scale), t.keyBias(), t.valueBias()) : null;
				NDArray gateUp = upload(owner, type, t.gate(), t.up()); // [2F, D]
				Attention attention = new Attention(config, i,
						new Attention.Weights(qkv, qkvBias, upload(owner, t.output(), type), fold),
						options.attentionDataType());
				FeedForward.Weights ff = new FeedForward.Weights(gateUp, upload(owner, t.down(), type),
						config.intermediateSize());
				layers
					.add(new DecoderLayer(new RmsNorm(upload(owner, t.attentionNorm(), type), config.rmsNormEpsilon()),
							attention, new RmsNorm(upload(owner, t.ffnNorm(), type), config.rmsNormEpsilon()),
							new DenseFeedForward(ff)));
				progress.accept(i + 1);
			}
			return new CausalLm(config, options, owner, embedding, lmHead, finalNorm, rotary, layers);
		}
		catch (RuntimeException ex) {
			owner.close();
			throw ex;
		}
	}

	/**
	 * Copies tensors, stacked along their first dimension, to the device in the model's
	 * precision.
	 */
	private static NDArray upload(NDManager manager, DataType type, FloatTensor... tensors) {
		FloatTensor stacked = (tensors.length == 1) ? tensors[0] : stack(tensors);
		NDArray array = manager.create(stacked.data(), new Shape(stacked.shape()));
		if (type == DataType.FLOAT32) {
			return array;
		}
		NDArray converted = array.toType(type, false);
		array.close();
		return converted;
	}

	private static NDArray upload(NDManager manager, FloatTensor tensor, DataType type) {
		return upload(manager, type, tensor);
	}

	private static FloatTensor stack(FloatTensor... tensors) {
		int total = 0;
		long rows = 0;
		for (FloatTensor tensor : tensors) {
			total += tensor.data().length;
			rows += tensor.shape()[0];
		}
		float[] data = new float[total];
		int offset = 0;
		for (FloatTensor tensor : tensors) {
			System.arraycopy(tensor.data(), 0, data, offset, tensor.data().length);
			offset += tensor.data().length;
		}
		long[] shape = tensors[0].shape().clone();
		shape[0] = rows;
		return new FloatTensor(data, shape);
	}

	private static FloatTensor scaled(FloatTensor tensor, float scale) {
		if (scale == 1f) {
			return tensor;
		}
		float[] data = tensor.data().clone();
		for (int i = 0; i < data.length; i++) {
			data[i] *= scale;
		}
		return new FloatTensor(data, tensor.shape());
	}

	/**
	 * The same model with each layer's feed-forward replaced; weights are shared, nothing
	 * is copied.
	 * @param replacement (layer index, dense feed-forward) -> feed-forward
	 */
	public CausalLm withFeedForwards(BiFunction<Integer, FeedForward, FeedForward> replacement) {
		List<DecoderLayer> replaced = new ArrayList<>();
		for (int i = 0; i < this.layers.size(); i++) {
			DecoderLayer layer = this.layers.get(i);
			replaced.add(layer.withFeedForward(replacement.apply(i, layer.feedForward())));
		}
		return new CausalLm(this.config, this.options, this.manager, this.embedding, this.lmHead, this.finalNorm,
				this.rotary, replaced);
	}

	public ModelConfig config() {
		return this.config;
	}

	public ModelOptions options() {
		return this.options;
	}

	public NDManager manager() {
		return this.manager;
	}

	public List<DecoderLayer> layers() {
		return this.layers;
	}

	public FeedForward.State[] newFeedForwardStates(long seed) {
		FeedForward.State[] states = new FeedForward.State[this.layers.size()];
		for (int i = 0; i < states.length; i++) {
			states[i] = this.layers.get(i).feedForward().newState(seed + i);
		}
		return states;
	}

	/**
	 * Runs tokens at positions [position, position + T).
	 * @param tokens token ids on the model's device, [T] int64
	 * @param allLogits logits for every position ([T, V]) or only the last ([1, V])
	 * @return float32 logits
	 */
	public NDArray forward(NDArray tokens, int position, KvCache cache, FeedForward.Phase phase,
			FeedForward.State[] states, boolean allLogits) {
		NDArray x = this.embedding.get(tokens); // [T, D]
		long t = x.getShape().get(0);
		Positions positions = Attention.positions(this.config, x.getManager(), this.rotary.angles(position, (int) t),
				position, (int) t, this.options.attentionDataType());
		for (int i = 0; i < this.layers.size(); i++) {
			// each layer's intermediates (a prefill chunk's attention scores against a
			// long context are hundreds of MB) are freed when the layer is done, not
			// when the whole pass is: only the layer's output escapes its scope
			NDArray next;
			try (NDScope layerScope = new NDScope()) {
				next = this.layers.get(i).forward(x, positions, cache, phase, states[i]);
				NDScope.unregister(next);
			}
			NDScope.register(next);
			x = next; // [T, D]
		}
		if (!allLogits && t > 1) {
			x = x.get(new NDIndex().addSliceDim(t - 1, t)); // [1, D]
		}
		// [T, V]
		NDArray logits = Linear.linear(this.finalNorm.forward(x), this.lmHead).singletonOrThrow();
		return (logits.getDataType() == DataType.FLOAT32) ? logits : logits.toType(DataType.FLOAT32, false);
	}

	/** Bytes of weights one decode step reads with every feed-forward neuron active. */
	public long denseWeightBytesPerToken() {
		ModelConfig c = this.config;
		long perLayer = (long) (c.numberOfAttentionHeads() + 2L * c.numberOfKeyValueHeads()) * c.headDimension()
				* c.hiddenSize() + (long) c.hiddenSize() * c.numberOfAttentionHeads() * c.headDimension()
				+ 3L * c.intermediateSize() * c.hiddenSize() + 2L * c.hiddenSize();
		long total = perLayer * c.numberOfLayers() + (long) c.vocabularySize() * c.hiddenSize() + c.hiddenSize();
		return total * this.options.dtype().bytes();
	}

	/**
	 * Frees every weight of the model (and of models derived from it by the GRIFFIN
	 * transform).
	 */
	public void close() {
		this.manager.close();
	}

}

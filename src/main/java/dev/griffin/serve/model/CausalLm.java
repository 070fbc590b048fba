package dev.griffin.serve.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.BiFunction;
import java.util.function.IntConsumer;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
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

	private final List<DecoderLayer> layers;

	private CausalLm(ModelConfig config, ModelOptions options, NDManager manager, NDArray embedding, NDArray lmHead,
			RmsNorm finalNorm, List<DecoderLayer> layers) {
		this.config = config;
		this.options = options;
		this.manager = manager;
		this.embedding = embedding;
		this.lmHead = lmHead;
		this.finalNorm = finalNorm;
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
			RotaryEmbedding rotary = new RotaryEmbedding(config, owner, type);
			List<DecoderLayer> layers = new ArrayList<>();
			for (int i = 0; i < config.numberOfLayers(); i++) {
				LayerTensors t = checkpoint.layer(i);
				NDArray qkv = upload(owner, t.query(), type).concat(upload(owner, t.key(), type), 0)
					.concat(upload(owner, t.value(), type), 0);
				NDArray qkvBias = t.hasAttentionBias()
						? upload(owner, t.queryBias(), type).concat(upload(owner, t.keyBias(), type))
							.concat(upload(owner, t.valueBias(), type))
						: null;
				NDArray gateUp = upload(owner, t.gate(), type).concat(upload(owner, t.up(), type), 0);
				Attention attention = new Attention(config, i,
						new Attention.Weights(qkv, qkvBias, upload(owner, t.output(), type)), rotary);
				FeedForward.Weights ff = new FeedForward.Weights(gateUp, upload(owner, t.down(), type),
						config.intermediateSize());
				layers
					.add(new DecoderLayer(new RmsNorm(upload(owner, t.attentionNorm(), type), config.rmsNormEpsilon()),
							attention, new RmsNorm(upload(owner, t.ffnNorm(), type), config.rmsNormEpsilon()),
							new DenseFeedForward(ff)));
				progress.accept(i + 1);
			}
			return new CausalLm(config, options, owner, embedding, lmHead, finalNorm, layers);
		}
		catch (RuntimeException ex) {
			owner.close();
			throw ex;
		}
	}

	private static NDArray upload(NDManager manager, FloatTensor tensor, DataType type) {
		NDArray array = manager.create(tensor.data(), new Shape(tensor.shape()));
		return (type == DataType.FLOAT32) ? array : array.toType(type, false);
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
				replaced);
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
		for (int i = 0; i < this.layers.size(); i++) {
			x = this.layers.get(i).forward(x, position, cache, phase, states[i]);
		}
		if (!allLogits) {
			x = x.get(new NDIndex("-1:")); // [1, D]
		}
		NDArray logits = Linear.linear(this.finalNorm.forward(x), this.lmHead).singletonOrThrow(); // [T,
																									// V]
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

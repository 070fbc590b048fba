package dev.griffin.serve.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.BiFunction;
import java.util.function.Supplier;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;

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

	/**
	 * The windowed layers' rotation when it differs (Gemma 3's local layers), else
	 * rotary.
	 */
	private final RotaryEmbedding windowedRotary;

	private final List<DecoderLayer> layers;

	private final Kernels kernels;

	private final NDArray[] lmHeadHalves; // views for the split decode form

	/**
	 * @param manager owner of every weight (closing the model closes it)
	 * @param lmHead [V, D], the embedding itself when tied
	 * @param windowedRotary the rotation of the layers that attend within the sliding
	 * window, when the config gives them a rotary base of their own; else {@code rotary}
	 */
	public CausalLm(ModelConfig config, ModelOptions options, NDManager manager, NDArray embedding, NDArray lmHead,
			RmsNorm finalNorm, RotaryEmbedding rotary, RotaryEmbedding windowedRotary, List<DecoderLayer> layers) {
		this(config, options, manager, embedding, lmHead, Kernels.rowHalves(lmHead), finalNorm, rotary, windowedRotary,
				layers, Kernels.pool());
	}

	private CausalLm(ModelConfig config, ModelOptions options, NDManager manager, NDArray embedding, NDArray lmHead,
			NDArray[] lmHeadHalves, RmsNorm finalNorm, RotaryEmbedding rotary, RotaryEmbedding windowedRotary,
			List<DecoderLayer> layers, Kernels kernels) {
		this.config = config;
		this.options = options;
		this.manager = manager;
		this.embedding = embedding;
		this.lmHead = lmHead;
		this.finalNorm = finalNorm;
		this.rotary = rotary;
		this.windowedRotary = windowedRotary;
		this.layers = Collections.unmodifiableList(layers);
		this.lmHeadHalves = lmHeadHalves;
		this.kernels = kernels;
	}

	/**
	 * The same model computing its products as {@code plan} says, reading this model's
	 * packed weights where the plan's forms go through oneDNN; nothing is copied.
	 */
	public CausalLm withKernels(Kernels plan) {
		return with(this.layers, plan.withPacked(this.kernels.packed()));
	}

	/**
	 * The same model with oneDNN-packed copies of its weight matrices (attention, the
	 * dense feed-forward blocks and the output head), which its oneDNN forms and batched
	 * decode passes read ({@link PackedWeights}); the copies belong to the model's
	 * manager.
	 * @throws IllegalStateException unless the weights are on the CPU
	 */
	public CausalLm withPackedWeights() {
		if (!this.options.device().equals("cpu")) {
			throw new IllegalStateException("packed weights need weights on the CPU");
		}
		List<NDArray> matrices = new ArrayList<>();
		for (DecoderLayer layer : this.layers) {
			matrices.addAll(layer.matrices());
		}
		matrices.add(this.lmHead);
		PackedWeights packed = PackedWeights.of(matrices);
		return with(this.layers, this.kernels.withPacked(packed));
	}

	/**
	 * The same model without packed copies, which are freed: for a plan that reads none
	 * ({@link Kernels#readsPacked}). This model must not be used afterwards.
	 */
	public CausalLm withoutPackedWeights() {
		PackedWeights packed = this.kernels.packed();
		CausalLm plain = with(this.layers, this.kernels.withPacked(PackedWeights.NONE));
		packed.close();
		return plain;
	}

	public Kernels kernels() {
		return this.kernels;
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
		return with(replaced, this.kernels);
	}

	/** This model's weights with other layers (over the same weights) or kernels. */
	private CausalLm with(List<DecoderLayer> layers, Kernels kernels) {
		return new CausalLm(this.config, this.options, this.manager, this.embedding, this.lmHead, this.lmHeadHalves,
				this.finalNorm, this.rotary, this.windowedRotary, layers, kernels);
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
		NDArray x = embed(tokens); // [T, D]
		long t = x.getShape().get(0);
		this.kernels.enter((int) t);
		DataType type = this.options.attentionDataType();
		Positions positions;
		Positions windowedPositions;
		if (this.config.mixesLayers()) {
			// global layers see every earlier key, local ones those within the window
			positions = Attention.positions(0, x.getManager(), this.rotary.angles(position, (int) t), position, (int) t,
					type);
			windowedPositions = Attention.positions(this.config.slidingWindow(), x.getManager(),
					this.windowedRotary.angles(position, (int) t), position, (int) t, type);
		}
		else {
			positions = Attention.positions(this.config.slidingWindow(), x.getManager(),
					this.rotary.angles(position, (int) t), position, (int) t, type);
			windowedPositions = positions;
		}
		for (int i = 0; i < this.layers.size(); i++) {
			DecoderLayer layer = this.layers.get(i);
			FeedForward.State state = states[i];
			NDArray input = x;
			Positions at = this.config.windowed(i) ? windowedPositions : positions;
			x = inLayerScope(() -> layer.forward(input, at, cache, phase, state, this.kernels)); // [T,
																									// D]
		}
		if (!allLogits && t > 1) {
			x = x.get(new NDIndex().addSliceDim(t - 1, t)); // [1, D]
		}
		return logits(x, this.kernels); // [T, V] with allLogits, else [1, V]
	}

	/**
	 * The tokens' embeddings, scaled where the architecture scales them: by the scale
	 * rounded to the embeddings' type first, as transformers multiplies them.
	 */
	private NDArray embed(NDArray tokens) {
		NDArray x = this.embedding.get(tokens);
		float scale = this.config.embeddingScale();
		if (scale == 1f) {
			return x;
		}
		NDArray factor = x.getManager().create(scale).toType(x.getDataType(), false);
		return x.mul(factor);
	}

	/**
	 * Runs one layer in a scope of its own: its intermediates (a prefill chunk's
	 * attention scores against a long context are hundreds of MB) are freed when the
	 * layer is done, not when the whole pass is; only the layer's output escapes.
	 */
	private static NDArray inLayerScope(Supplier<NDArray> layer) {
		NDArray output;
		try (NDScope layerScope = new NDScope()) {
			output = layer.get();
			NDScope.unregister(output);
		}
		NDScope.register(output);
		return output;
	}

	/**
	 * The head's float32 logits of hidden states x [N, D], its products as {@code plan}
	 * says.
	 */
	private NDArray logits(NDArray x, Kernels plan) {
		NDArray logits = plan.head(this.finalNorm.forward(x), this.lmHead, this.lmHeadHalves); // [N,
																								// V]
		NDArray float32 = (logits.getDataType() == DataType.FLOAT32) ? logits : logits.toType(DataType.FLOAT32, false);
		float cap = (float) this.config.finalSoftCap();
		// Gemma 2 soft-caps its logits: cap * tanh(logits / cap)
		return (cap > 0) ? float32.div(cap).tanh().mul(cap) : float32;
	}

	/**
	 * One generated token of each of B sequences in one pass: the products read the
	 * weights once for the whole batch, each row attends over its own cache, and each
	 * row's feed-forward reads the weights its state names (see
	 * {@link FeedForward.State#generationWeights()}), so sequences of this model and of
	 * its GRIFFIN variants share a pass.
	 * @param tokens token ids on the model's device, [B] int64
	 * @param positions each row's position
	 * @param caches each row's KV cache
	 * @param states each row's feed-forward states, by layer
	 * @return float32 logits [B, V]
	 */
	public NDArray decodeBatch(NDArray tokens, int[] positions, KvCache[] caches, FeedForward.State[][] states) {
		int b = positions.length;
		if (tokens.getShape().get(0) != b || caches.length != b || states.length != b) {
			throw new IllegalArgumentException("a batch needs a token, a position, a cache and states per row");
		}
		NDArray x = embed(tokens); // [B, D]
		Kernels plan = this.kernels.batchDecode(this.options.oneDnnApplies());
		plan.enter(b);
		RotaryEmbedding.Angles rotary = this.rotary.angles(positions, x.getManager());
		BatchKv kv;
		RotaryEmbedding.Angles windowedRotary;
		BatchKv windowedKv;
		if (this.config.mixesLayers()) {
			kv = new BatchKv(positions, caches, 0, x.getManager());
			windowedRotary = this.windowedRotary.angles(positions, x.getManager());
			windowedKv = new BatchKv(positions, caches, this.config.slidingWindow(), x.getManager());
		}
		else {
			kv = new BatchKv(positions, caches, this.config.slidingWindow(), x.getManager());
			windowedRotary = rotary;
			windowedKv = kv;
		}
		for (int i = 0; i < this.layers.size(); i++) {
			DecoderLayer layer = this.layers.get(i);
			FeedForward.State[] layerStates = new FeedForward.State[b];
			for (int row = 0; row < b; row++) {
				layerStates[row] = states[row][i];
			}
			NDArray input = x;
			boolean windowed = this.config.windowed(i);
			BatchKv layerKv = windowed ? windowedKv : kv;
			RotaryEmbedding.Angles layerRotary = windowed ? windowedRotary : rotary;
			x = inLayerScope(() -> layer.forwardBatch(input, layerKv, layerRotary, layerStates, plan)); // [B,
																										// D]
		}
		return logits(x, plan); // [B, V], the head's products in the batch's form too
	}

	/**
	 * Whether {@code other} computes with this model's weights (it is this model, or a
	 * variant with other kernels or feed-forward blocks over the same weights), so that
	 * their sequences can share a {@link #decodeBatch} pass.
	 */
	public boolean sharesWeights(CausalLm other) {
		return this.manager == other.manager && this.embedding == other.embedding;
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

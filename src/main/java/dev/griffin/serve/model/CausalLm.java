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
 * A decoder-only causal language model on DJL NDArrays. Immutable once built and shared
 * by all sequences; per-sequence state (KV cache, feed-forward state) is passed in by the
 * caller.
 */
public final class CausalLm {

	private final ModelConfig config;

	private final ModelOptions options;

	private final NDManager manager;

	private final NDArray embedding; // [V, D]

	private final NDArray lmHead; // [V, D], the embedding itself when tied

	private final Norm finalNorm; // null in a post-norm model

	/** The rotation of every layer, or null where the model learns positions. */
	private final RotaryEmbedding rotary;

	private final LearnedPositions learned; // null where positions rotate

	/**
	 * The windowed layers' rotation when it differs (Gemma 3's local layers), else
	 * rotary.
	 */
	private final RotaryEmbedding windowedRotary;

	private final List<DecoderLayer> layers;

	private final Kernels kernels;

	private final NDArray[] lmHeadHalves; // views for the split decode form

	/**
	 * OPT's learned absolute positions, and the projections between its token embeddings'
	 * width E and the residual stream's D where they differ.
	 *
	 * @param table [P + 2, D]: position p is row p + 2
	 * @param projectIn [D, E], or null where E = D
	 * @param projectOut [E, D], or null where E = D
	 */
	public record LearnedPositions(NDArray table, NDArray projectIn, NDArray projectOut) {

		/** OPT skips the table's first two rows. */
		static final int OFFSET = 2;

		public LearnedPositions {
			if ((projectIn == null) != (projectOut == null)) {
				throw new IllegalArgumentException("embeddings are projected both in and out or neither");
			}
		}

	}

	/**
	 * A model whose positions rotate queries and keys.
	 * @param manager owner of every weight (closing the model closes it)
	 * @param lmHead [V, D], the embedding itself when tied
	 * @param windowedRotary the rotation of the layers that attend within the sliding
	 * window, when the config gives them a rotary base of their own; else {@code rotary}
	 */
	public CausalLm(ModelConfig config, ModelOptions options, NDManager manager, NDArray embedding, NDArray lmHead,
			Norm finalNorm, RotaryEmbedding rotary, RotaryEmbedding windowedRotary, List<DecoderLayer> layers) {
		this(config, options, manager, embedding, lmHead, Kernels.rowHalves(lmHead), finalNorm, rotary, windowedRotary,
				null, layers, Kernels.pool());
	}

	/**
	 * A model that learns its positions (OPT).
	 * @param embedding [V, E]
	 * @param lmHead [V, E], the embedding itself when tied
	 * @param finalNorm the norm of the last hidden state, or null (a post-norm model)
	 */
	public CausalLm(ModelConfig config, ModelOptions options, NDManager manager, NDArray embedding, NDArray lmHead,
			Norm finalNorm, LearnedPositions learned, List<DecoderLayer> layers) {
		this(config, options, manager, embedding, lmHead, Kernels.rowHalves(lmHead), finalNorm, null, null, learned,
				layers, Kernels.pool());
	}

	private CausalLm(ModelConfig config, ModelOptions options, NDManager manager, NDArray embedding, NDArray lmHead,
			NDArray[] lmHeadHalves, Norm finalNorm, RotaryEmbedding rotary, RotaryEmbedding windowedRotary,
			LearnedPositions learned, List<DecoderLayer> layers, Kernels kernels) {
		if ((rotary == null) == (learned == null)) {
			throw new IllegalArgumentException("positions either rotate or are learned");
		}
		this.config = config;
		this.options = options;
		this.manager = manager;
		this.embedding = embedding;
		this.lmHead = lmHead;
		this.finalNorm = finalNorm;
		this.rotary = rotary;
		this.windowedRotary = windowedRotary;
		this.learned = learned;
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
		if (this.learned != null && this.learned.projectIn() != null) {
			matrices.add(this.learned.projectIn());
			matrices.add(this.learned.projectOut());
		}
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

	/**
	 * The same model whose KV caches (the sessions' and arenas' made for it) are in
	 * {@code precision}, or null for the weights' ({@link ModelOptions#cacheDataType()});
	 * nothing is copied.
	 */
	public CausalLm withKvCache(ModelOptions.Precision precision) {
		return new CausalLm(this.config, this.options.withKvCache(precision), this.manager, this.embedding, this.lmHead,
				this.lmHeadHalves, this.finalNorm, this.rotary, this.windowedRotary, this.learned, this.layers,
				this.kernels);
	}

	/** This model's weights with other layers (over the same weights) or kernels. */
	private CausalLm with(List<DecoderLayer> layers, Kernels kernels) {
		return new CausalLm(this.config, this.options, this.manager, this.embedding, this.lmHead, this.lmHeadHalves,
				this.finalNorm, this.rotary, this.windowedRotary, this.learned, layers, kernels);
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
		long t = tokens.getShape().get(0);
		this.kernels.enter((int) t);
		NDArray x = embed(tokens, this.kernels); // [T, D]
		if (this.learned != null) {
			if (position + t > this.config.maxPositionEmbeddings()) {
				throw new IllegalArgumentException("positions up to %d are past the model's %d learned ones"
					.formatted(position + t, this.config.maxPositionEmbeddings()));
			}
			long row = (long) position + LearnedPositions.OFFSET;
			x = x.add(this.learned.table().get(new NDIndex().addSliceDim(row, row + t)));
		}
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
			RotaryEmbedding.Angles angles = (this.rotary != null) ? this.rotary.angles(position, (int) t) : null;
			positions = Attention.positions(this.config.slidingWindow(), x.getManager(), angles, position, (int) t,
					type);
			windowedPositions = positions;
		}
		for (int i = 0; i < this.layers.size(); i++) {
			DecoderLayer layer = this.layers.get(i);
			FeedForward.State state = states[i];
			NDArray input = x;
			Positions at = this.config.windowed(i) ? windowedPositions : positions;
			// from the second layer on, the input is the pass's own
			boolean overwrite = i > 0;
			// [T, D]
			x = inLayerScope(() -> layer.forward(input, at, cache, phase, state, this.kernels, overwrite));
		}
		if (!allLogits && t > 1) {
			x = x.get(new NDIndex().addSliceDim(t - 1, t)); // [1, D]
		}
		// [T, V] with allLogits, else [1, V]
		// (one token: the last layer's output is the pass's own)
		return logits(x, this.kernels, t == 1 && !this.layers.isEmpty());
	}

	/**
	 * The tokens' embeddings, scaled where the architecture scales them (by the scale
	 * rounded to the embeddings' type first, as transformers multiplies them) and
	 * projected to the residual stream's width where the model projects them.
	 */
	private NDArray embed(NDArray tokens, Kernels plan) {
		NDArray x = this.embedding.get(tokens);
		if (this.learned != null && this.learned.projectIn() != null) {
			x = plan.linear(x, this.learned.projectIn(), null);
		}
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
	 * @param own whether x is the pass's own (no one reads it after the head)
	 */
	private NDArray logits(NDArray x, Kernels plan, boolean own) {
		NDArray last = (this.finalNorm != null) ? finalNorm(x, plan, own) : x;
		if (this.learned != null && this.learned.projectOut() != null) {
			last = plan.linear(last, this.learned.projectOut(), null); // [N, E]
		}
		NDArray logits = plan.head(last, this.lmHead, this.lmHeadHalves); // [N, V]
		NDArray float32 = (logits.getDataType() == DataType.FLOAT32) ? logits : logits.toType(DataType.FLOAT32, false);
		float cap = (float) this.config.finalSoftCap();
		// Gemma 2 soft-caps its logits: cap * tanh(logits / cap)
		return (cap > 0) ? float32.div(cap).tanh().mul(cap) : float32;
	}

	/**
	 * The norm before the head. A decode pass in the {@link Kernels.Decode#NATIVE} form
	 * takes an RMS norm natively, over the pass's own x, where libtorch would run seven
	 * operations and two new tensors.
	 */
	private NDArray finalNorm(NDArray x, Kernels plan, boolean own) {
		if (own && plan.decode() == Kernels.Decode.NATIVE && this.finalNorm instanceof RmsNorm rms
				&& NativeKernels.unavailable() == null && NativeKernels.reads(x)
				&& rms.weight().getDataType() == x.getDataType()) {
			return NativeKernels.norm(x, rms.weight(), rms.epsilonValue(), true);
		}
		return this.finalNorm.forward(x);
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
		Kernels plan = this.kernels.batchDecode(this.options.oneDnnApplies());
		plan.enter(b);
		NDArray x = embed(tokens, plan); // [B, D]
		if (this.learned != null) {
			long[] rows = new long[b];
			for (int i = 0; i < b; i++) {
				rows[i] = (long) positions[i] + LearnedPositions.OFFSET;
			}
			x = x.add(this.learned.table().get(x.getManager().create(rows)));
		}
		RotaryEmbedding.Angles rotary = (this.rotary != null) ? this.rotary.angles(positions, x.getManager()) : null;
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
			boolean overwrite = i > 0; // an earlier layer's output
			// [B, D]
			x = inLayerScope(() -> layer.forwardBatch(input, layerKv, layerRotary, layerStates, plan, overwrite));
		}
		// [B, V], the head's products in the batch's form too
		return logits(x, plan, !this.layers.isEmpty());
	}

	/**
	 * Whether a {@link #decodeBatch} pass can carry rows that record their generated
	 * token ({@link FeedForward.State#recordsGeneration}, GRIFFIN's {@code delayed}):
	 * every layer of the batch runs in the native call, which returns their statistic.
	 * Otherwise such a sequence runs that token alone, through the prompt pass.
	 */
	public boolean recordsInBatch() {
		Kernels plan = this.kernels.batchDecode(this.options.oneDnnApplies());
		DataType type = this.embedding.getDataType();
		for (DecoderLayer layer : this.layers) {
			if (!layer.recordsInBatch(type, plan)) {
				return false;
			}
		}
		return !this.layers.isEmpty();
	}

	/**
	 * Whether a sequence with this cache can run its prompt chunk in a
	 * {@link #promptBatch} pass: rotary positions, one kind of layer, and every layer's
	 * native prompt call applies.
	 */
	public boolean promptsTogether(KvCache cache) {
		if (this.learned != null || this.rotary == null || this.config.mixesLayers()) {
			return false;
		}
		for (DecoderLayer layer : this.layers) {
			if (!layer.promptsTogether(this.embedding.getDataType(), cache, this.kernels)) {
				return false;
			}
		}
		return true;
	}

	/**
	 * The prompt chunks of several sequences in one pass ({@link #promptsTogether} for
	 * each): the products read the weights once for all their tokens, each token attends
	 * over its own sequence's cache, and each sequence's feed-forward blocks record the
	 * statistic of its own tokens (GRIFFIN's).
	 * @param tokens every sequence's chunk, one after another, on the model's device, [R]
	 * int64
	 * @param positions each row's position (a sequence's rows consecutive)
	 * @param caches each row's KV cache (a sequence's rows share one)
	 * @param owners each row's sequence, in [0, S)
	 * @param models each sequence's model: this one or a variant over its weights
	 * ({@link #sharesWeights})
	 * @param states each sequence's feed-forward states, by layer
	 * @param lasts the row of each sequence's last token, in order
	 * @return float32 logits after each sequence's last token, [S, V]
	 */
	public NDArray promptBatch(NDArray tokens, int[] positions, KvCache[] caches, int[] owners, CausalLm[] models,
			FeedForward.State[][] states, long[] lasts) {
		int rows = positions.length;
		int sequences = models.length;
		if (tokens.getShape().get(0) != rows || caches.length != rows || owners.length != rows || sequences == 0
				|| states.length != sequences || lasts.length != sequences) {
			throw new IllegalArgumentException(
					"a prompt batch needs a token, a position, a cache and a sequence per row, and states and a last "
							+ "row per sequence");
		}
		for (CausalLm model : models) {
			if (!sharesWeights(model)) {
				throw new IllegalArgumentException("sequences of different models cannot share a pass");
			}
		}
		this.kernels.enter(rows);
		NDArray x = embed(tokens, this.kernels); // [R, D]
		NDArray rotation = this.rotary.angles(positions, x.getManager()).rotation();
		int[] starts = new int[rows];
		for (int r = 0; r < rows; r++) {
			if (positions[r] >= caches[r].capacity()) {
				throw new IllegalStateException("KV cache overflow: position %d of a cache of %d"
					.formatted(positions[r], caches[r].capacity()));
			}
			starts[r] = Attention.keyStart(this.config.slidingWindow(), positions[r]);
		}
		for (int i = 0; i < this.layers.size(); i++) {
			DecoderLayer layer = this.layers.get(i);
			DecoderLayer[] own = new DecoderLayer[sequences];
			FeedForward.State[] layerStates = new FeedForward.State[sequences];
			for (int s = 0; s < sequences; s++) {
				own[s] = models[s].layers.get(i);
				layerStates[s] = states[s][i];
			}
			// [R, D] -> [R, D]
			NDArray input = x;
			x = inLayerScope(
					() -> layer.forwardPrompts(input, rotation, caches, positions, starts, owners, own, layerStates));
		}
		return logits(x.get(x.getManager().create(lasts)), this.kernels, false); // [S, V]
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
				+ (long) c.feedForwardMatrices() * c.intermediateSize() * c.hiddenSize() + 2L * c.hiddenSize();
		long projections = c.projectsEmbeddings() ? 2L * c.hiddenSize() * c.wordEmbeddingSize() : 0;
		long total = perLayer * c.numberOfLayers() + (long) c.vocabularySize() * c.wordEmbeddingSize() + c.hiddenSize()
				+ projections;
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

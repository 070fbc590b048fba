package dev.griffin.serve.model;

import java.util.List;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;

/**
 * One pre-norm transformer block: {@code h = x + attention(norm(x))}, then
 * {@code h + ff(norm(h))}; where the architecture norms its sublayers' outputs too (Gemma
 * 3), each of the two is normed again before it is added.
 */
public final class DecoderLayer {

	private final RmsNorm attentionNorm;

	private final Attention attention;

	private final RmsNorm ffnNorm;

	private final FeedForward feedForward;

	private final RmsNorm postAttentionNorm;

	private final RmsNorm postFfnNorm;

	public DecoderLayer(RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm, FeedForward feedForward) {
		this(attentionNorm, attention, ffnNorm, feedForward, null, null);
	}

	/**
	 * @param postAttentionNorm the norm of attention's output, or null
	 * @param postFfnNorm the norm of the feed-forward block's output, null exactly when
	 * postAttentionNorm is
	 */
	public DecoderLayer(RmsNorm attentionNorm, Attention attention, RmsNorm ffnNorm, FeedForward feedForward,
			RmsNorm postAttentionNorm, RmsNorm postFfnNorm) {
		if ((postAttentionNorm == null) != (postFfnNorm == null)) {
			throw new IllegalArgumentException("sublayer outputs are normed both or neither");
		}
		this.attentionNorm = attentionNorm;
		this.attention = attention;
		this.ffnNorm = ffnNorm;
		this.feedForward = feedForward;
		this.postAttentionNorm = postAttentionNorm;
		this.postFfnNorm = postFfnNorm;
	}

	/**
	 * Whether the fused layer module ({@link BatchLayer}) computes this block: it knows
	 * the plain pre-norm block only.
	 */
	private boolean plain() {
		return this.postAttentionNorm == null && !this.attention.normsQueryKey();
	}

	private static NDArray normed(RmsNorm norm, NDArray x) {
		return (norm == null) ? x : norm.forward(x);
	}

	public FeedForward feedForward() {
		return this.feedForward;
	}

	/**
	 * The weight matrices of this block's products: attention's projections and the dense
	 * feed-forward's.
	 */
	List<NDArray> matrices() {
		FeedForward.Weights ff = this.feedForward.weights();
		return List.of(this.attention.weights().queryKeyValue(), this.attention.weights().output(), ff.gateUp(),
				ff.down());
	}

	/** Same block, another feed-forward (the GRIFFIN transform). */
	public DecoderLayer withFeedForward(FeedForward replacement) {
		return new DecoderLayer(this.attentionNorm, this.attention, this.ffnNorm, replacement, this.postAttentionNorm,
				this.postFfnNorm);
	}

	/** x: [T, D] -> [T, D]. */
	public NDArray forward(NDArray x, Positions positions, KvCache cache, FeedForward.Phase phase,
			FeedForward.State state, Kernels kernels) {
		if (kernels.decode() == Kernels.Decode.LAYER && phase == FeedForward.Phase.GENERATION
				&& this.feedForward.fusable() && plain() && x.getShape().get(0) == 1
				&& (x.getDataType() == DataType.FLOAT32 || x.getDataType() == DataType.FLOAT16)) {
			Kernels.GatedWeights own = state.generationWeights();
			Kernels.GatedWeights ff = Kernels.readsDense(own) ? this.feedForward.weights() : own;
			// a sequence with no expert (k = 0) takes the path below, where its block
			// adds nothing
			if (ff.neurons() == null || ff.neurons().length > 0) {
				return BatchLayer.stepOne(x, this.attentionNorm, this.attention, this.ffnNorm, ff,
						kernels.halfPacked(ff), positions, cache, kernels);
			}
		}
		NDArray h = x.add(normed(this.postAttentionNorm,
				this.attention.forward(this.attentionNorm.forward(x), positions, cache, kernels)));
		return h
			.add(normed(this.postFfnNorm, this.feedForward.forward(this.ffnNorm.forward(h), phase, state, kernels)));
	}

	/**
	 * One generated token of each of B sequences: x [B, D] -> [B, D], row b at its
	 * position of its cache ({@code kv}) and this layer's {@code states[b]}. The states
	 * may come from different variants of this layer (dense and GRIFFIN blocks over the
	 * same dense weights): each row's feed-forward reads the weights its state names. A
	 * block that is not {@link FeedForward#fusable} runs each row through its own
	 * {@link FeedForward#forward}.
	 */
	NDArray forwardBatch(NDArray x, BatchKv kv, RotaryEmbedding.Angles rotary, FeedForward.State[] states,
			Kernels kernels) {
		Kernels.GatedWeights[] rows = new Kernels.GatedWeights[states.length];
		for (int i = 0; i < rows.length; i++) {
			rows[i] = states[i].generationWeights();
		}
		FeedForward.Weights ff = this.feedForward.weights();
		int neurons = (int) ff.gateUp().getShape().get(0) / 2;
		boolean fusable = this.feedForward.fusable();
		if (fusable && plain() && BatchLayer.applies(kv, kernels, rows, neurons)) {
			NDArray keep = Kernels.allDense(rows) ? null : Kernels.keep(rows, neurons, x.getManager());
			return BatchLayer.step(x, this.attentionNorm, this.attention, this.ffnNorm, ff, rotary, kv, kernels, keep);
		}
		NDArray h = x.add(normed(this.postAttentionNorm,
				this.attention.forwardBatch(this.attentionNorm.forward(x), kv, rotary, kernels)));
		NDArray normed = this.ffnNorm.forward(h);
		if (fusable) {
			return h.add(normed(this.postFfnNorm, kernels.feedForwardRows(normed, ff, rows)));
		}
		NDList outputs = new NDList(states.length);
		for (int i = 0; i < states.length; i++) {
			outputs.add(this.feedForward.forward(normed.get(i + ":" + (i + 1)), FeedForward.Phase.GENERATION, states[i],
					kernels));
		}
		return h.add(normed(this.postFfnNorm, NDArrays.concat(outputs)));
	}

}

package dev.griffin.serve.model;

import java.util.Arrays;
import java.util.List;
import java.util.function.UnaryOperator;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;

/**
 * One pre-norm transformer block: {@code h = x + attention(norm(x))}, then
 * {@code h + ff(norm(h))}; where the architecture norms its sublayers' outputs too (Gemma
 * 3), each of the two is normed again before it is added. A post-norm block (OPT-350m)
 * norms the sums instead: {@code h = norm(x + attention(x))}, then
 * {@code norm(h + ff(h))}.
 */
public final class DecoderLayer {

	private final Norm attentionNorm;

	private final Attention attention;

	private final Norm ffnNorm;

	private final FeedForward feedForward;

	private final Norm postAttentionNorm;

	private final Norm postFfnNorm;

	private final boolean postNorm;

	public DecoderLayer(Norm attentionNorm, Attention attention, Norm ffnNorm, FeedForward feedForward) {
		this(attentionNorm, attention, ffnNorm, feedForward, null, null, false);
	}

	/**
	 * @param attentionNorm the norm of attention's input (of the residual stream after
	 * attention in a post-norm block)
	 * @param ffnNorm the norm of the feed-forward block's input (of the residual stream
	 * after it in a post-norm block)
	 * @param postAttentionNorm the norm of attention's output, or null
	 * @param postFfnNorm the norm of the feed-forward block's output, null exactly when
	 * postAttentionNorm is
	 * @param postNorm whether the block norms the residual stream after each sublayer
	 * instead of the sublayer's input
	 */
	public DecoderLayer(Norm attentionNorm, Attention attention, Norm ffnNorm, FeedForward feedForward,
			Norm postAttentionNorm, Norm postFfnNorm, boolean postNorm) {
		if ((postAttentionNorm == null) != (postFfnNorm == null)) {
			throw new IllegalArgumentException("sublayer outputs are normed both or neither");
		}
		if (postNorm && postAttentionNorm != null) {
			throw new IllegalArgumentException("a post-norm block does not norm its sublayers' outputs as well");
		}
		this.attentionNorm = attentionNorm;
		this.attention = attention;
		this.ffnNorm = ffnNorm;
		this.feedForward = feedForward;
		this.postAttentionNorm = postAttentionNorm;
		this.postFfnNorm = postFfnNorm;
		this.postNorm = postNorm;
	}

	/**
	 * Whether the fused layer module ({@link BatchLayer}) computes this block: it knows
	 * the plain pre-norm block with RMS norms, rotated attention without biases after the
	 * product and a gated feed-forward block without biases.
	 */
	private boolean plain() {
		FeedForward.Weights ff = this.feedForward.weights();
		return this.postAttentionNorm == null && !this.postNorm && this.attention.fusable()
				&& this.attentionNorm instanceof RmsNorm && this.ffnNorm instanceof RmsNorm && ff.gated()
				&& ff.downBias() == null;
	}

	private static NDArray normed(Norm norm, NDArray x) {
		return (norm == null) ? x : norm.forward(x);
	}

	/**
	 * The residual stream after a sublayer: {@code x + sublayer(norm(x))}, the sublayer's
	 * output normed where the block norms outputs; in a post-norm block
	 * {@code norm(x + sublayer(x))}.
	 * @param sublayer what the sublayer computes of its input
	 */
	private NDArray residual(NDArray x, Norm norm, Norm outputNorm, UnaryOperator<NDArray> sublayer) {
		if (this.postNorm) {
			return norm.forward(x.add(sublayer.apply(x)));
		}
		return x.add(normed(outputNorm, sublayer.apply(norm.forward(x))));
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
				this.postFfnNorm, this.postNorm);
	}

	/** x: [T, D] -> [T, D]. */
	public NDArray forward(NDArray x, Positions positions, KvCache cache, FeedForward.Phase phase,
			FeedForward.State state, Kernels kernels) {
		return forward(x, positions, cache, phase, state, kernels, false);
	}

	/**
	 * x: [T, D] -> [T, D].
	 * @param overwrite whether x is the pass's own (no one reads it after this layer), so
	 * that a layer in one native call may write its result over it
	 */
	NDArray forward(NDArray x, Positions positions, KvCache cache, FeedForward.Phase phase, FeedForward.State state,
			Kernels kernels, boolean overwrite) {
		Kernels.Decode form = kernels.decode();
		if ((form == Kernels.Decode.LAYER || form == Kernels.Decode.NATIVE) && phase == FeedForward.Phase.GENERATION
				&& this.feedForward.fusable() && plain() && x.getShape().get(0) == 1
				&& (x.getDataType() == DataType.FLOAT32 || x.getDataType() == DataType.FLOAT16)) {
			Kernels.BlockWeights own = state.generationWeights();
			Kernels.BlockWeights ff = Kernels.readsDense(own) ? this.feedForward.weights() : own;
			// a sequence with no expert (k = 0) takes the path below, where its block
			// adds nothing
			if (ff.neurons() == null || ff.neurons().length > 0) {
				return (form == Kernels.Decode.NATIVE)
						? BatchLayer.stepOneNative(x, (RmsNorm) this.attentionNorm, this.attention,
								(RmsNorm) this.ffnNorm, ff, positions, cache, overwrite)
						: BatchLayer.stepOne(x, (RmsNorm) this.attentionNorm, this.attention, (RmsNorm) this.ffnNorm,
								ff, kernels.halfPacked(ff), positions, cache, kernels);
			}
		}
		if (phase == FeedForward.Phase.PROMPT && nativePrompt(x, cache, kernels)) {
			FeedForward.Weights ff = this.feedForward.weights();
			double[] statistic = this.feedForward.recordsPrompt(state) ? new double[ff.intermediateSize()] : null;
			NDArray y = BatchLayer.promptNative(x, (RmsNorm) this.attentionNorm, this.attention, (RmsNorm) this.ffnNorm,
					ff, positions, cache, statistic);
			if (statistic != null) {
				this.feedForward.recordPrompt(state, statistic);
			}
			return y;
		}
		NDArray h = residual(x, this.attentionNorm, this.postAttentionNorm,
				(in) -> this.attention.forward(in, positions, cache, kernels));
		return residual(h, this.ffnNorm, this.postFfnNorm, (in) -> this.feedForward.forward(in, phase, state, kernels));
	}

	/**
	 * Whether a prompt pass of any number of tokens (one, for each generated token a
	 * {@code delayed} selection records) runs this layer in one native call
	 * ({@link BatchLayer#promptNative}): the {@link Kernels.Prefill#NATIVE} form, a plain
	 * block whose prompt pass is the dense feed-forward block, float32 or float16 rows,
	 * weights the native products read and a float32 or float16 cache.
	 */
	private boolean nativePrompt(NDArray x, KvCache cache, Kernels kernels) {
		return nativePrompt(x.getDataType(), cache, kernels);
	}

	/**
	 * Whether prompt rows of this type, of a sequence with this cache, can run this layer
	 * with other sequences' rows ({@link #forwardPrompts}): the layer's native prompt
	 * call applies.
	 */
	boolean promptsTogether(DataType type, KvCache cache, Kernels kernels) {
		return nativePrompt(type, cache, kernels);
	}

	/**
	 * Prompt rows of several sequences ({@link #promptsTogether}): x [R, D] -> [R, D],
	 * row r at {@code positions[r]} of {@code caches[r]}, attending from
	 * {@code starts[r]}, sequence {@code owners[r]}'s. Each sequence's block (this
	 * layer's in {@code layers[s]}, a variant over the same weights) records the
	 * statistic of its own rows where it records the prompt (GRIFFIN).
	 */
	NDArray forwardPrompts(NDArray x, NDArray rotation, KvCache[] caches, int[] positions, int[] starts, int[] owners,
			DecoderLayer[] layers, FeedForward.State[] states) {
		FeedForward.Weights ff = this.feedForward.weights();
		int f = ff.intermediateSize();
		boolean records = false;
		for (int s = 0; s < layers.length; s++) {
			records |= layers[s].feedForward.recordsPrompt(states[s]);
		}
		double[] statistic = records ? new double[layers.length * f] : null;
		NDArray y = BatchLayer.promptsNative(x, (RmsNorm) this.attentionNorm, this.attention, (RmsNorm) this.ffnNorm,
				ff, rotation, caches, positions, starts, statistic, records ? owners : null);
		for (int s = 0; s < layers.length && records; s++) {
			if (layers[s].feedForward.recordsPrompt(states[s])) {
				layers[s].feedForward.recordPrompt(states[s], Arrays.copyOfRange(statistic, s * f, (s + 1) * f));
			}
		}
		return y;
	}

	/**
	 * Whether a batched decode step of rows of this type under {@code kernels} runs this
	 * layer in the native call, where a row may record its generated token's statistic
	 * ({@link #forwardBatch}). A recording row reads the dense block, so the batch takes
	 * the masked form, which the native call runs.
	 */
	boolean recordsInBatch(DataType type, Kernels kernels) {
		return batchesNatively(type, kernels) && NativeKernels.unavailable() == null;
	}

	/**
	 * Whether {@link BatchLayer#stepNative} can run a batch's layer in its masked dense
	 * feed-forward form: the {@link Kernels.Decode#NATIVE} form, a plain block whose
	 * feed-forward the batch fuses, float32 or float16 rows and a dense block the native
	 * products read. (The batch takes that form where it is the cheaper one for its rows,
	 * {@link Kernels#masksDense}.)
	 */
	private boolean batchesNatively(DataType type, Kernels kernels) {
		FeedForward.Weights ff = this.feedForward.weights();
		return kernels.decode() == Kernels.Decode.NATIVE && this.feedForward.fusable() && plain()
				&& (type == DataType.FLOAT32 || type == DataType.FLOAT16) && NativeKernels.reads(ff.gateUp())
				&& NativeKernels.reads(ff.down());
	}

	private boolean nativePrompt(DataType type, KvCache cache, Kernels kernels) {
		DataType cached = cache.storedKeys(this.attention.layer()).getDataType();
		if (kernels.prefill() != Kernels.Prefill.NATIVE || !(type == DataType.FLOAT32 || type == DataType.FLOAT16)
				|| !this.feedForward.promptFusable() || !plain()
				|| !(cached == DataType.FLOAT32 || cached == DataType.FLOAT16)) {
			return false;
		}
		for (NDArray weight : matrices()) {
			if (!NativeKernels.reads(weight)) {
				return false;
			}
		}
		return NativeKernels.unavailable() == null;
	}

	/**
	 * One generated token of each of B sequences: x [B, D] -> [B, D], row b at its
	 * position of its cache ({@code kv}) and this layer's {@code states[b]}. The states
	 * may come from different variants of this layer (dense and GRIFFIN blocks over the
	 * same dense weights): each row's feed-forward reads the weights its state names. A
	 * block that is not {@link FeedForward#fusable} runs each row through its own
	 * {@link FeedForward#forward}. A row whose state records its generated token
	 * ({@link FeedForward.State#recordsGeneration}, GRIFFIN's {@code delayed}) reads the
	 * dense block and hands the state its statistic; only the native layer call computes
	 * that ({@link #recordsInBatch}).
	 * @param overwrite whether x is the pass's own, so that a layer in one native call
	 * may write its result over it
	 */
	NDArray forwardBatch(NDArray x, BatchKv kv, RotaryEmbedding.Angles rotary, FeedForward.State[] states,
			Kernels kernels, boolean overwrite) {
		Kernels.BlockWeights[] rows = new Kernels.BlockWeights[states.length];
		// each recording row's part of the statistic, -1 for the others; null when none
		// records
		int[] parts = null;
		int recording = 0;
		for (int i = 0; i < rows.length; i++) {
			if (states[i].recordsGeneration()) {
				if (parts == null) {
					parts = new int[rows.length];
					Arrays.fill(parts, -1);
				}
				parts[i] = recording++;
			}
			else {
				rows[i] = states[i].generationWeights();
			}
		}
		FeedForward.Weights ff = this.feedForward.weights();
		int neurons = ff.intermediateSize();
		boolean fusable = this.feedForward.fusable();
		if (batchesNatively(x.getDataType(), kernels) && Kernels.masksDense(rows, neurons)) {
			NDArray keep = Kernels.allDense(rows) ? null : Kernels.keep(rows, neurons, x.getManager());
			double[] statistic = (parts == null) ? null : new double[recording * neurons];
			NDArray y = BatchLayer.stepNative(x, (RmsNorm) this.attentionNorm, this.attention, (RmsNorm) this.ffnNorm,
					ff, rotary, kv, keep, statistic, parts, overwrite);
			for (int i = 0; parts != null && i < parts.length; i++) {
				if (parts[i] >= 0) {
					states[i]
						.recordGenerated(Arrays.copyOfRange(statistic, parts[i] * neurons, (parts[i] + 1) * neurons));
				}
			}
			return y;
		}
		if (parts != null) {
			throw new IllegalStateException(
					"a batched step records a generated token's statistic only in the native layer call");
		}
		if (fusable && plain() && BatchLayer.applies(kv, kernels, rows, neurons)) {
			NDArray keep = Kernels.allDense(rows) ? null : Kernels.keep(rows, neurons, x.getManager());
			return BatchLayer.step(x, (RmsNorm) this.attentionNorm, this.attention, (RmsNorm) this.ffnNorm, ff, rotary,
					kv, kernels, keep);
		}
		NDArray h = residual(x, this.attentionNorm, this.postAttentionNorm,
				(in) -> this.attention.forwardBatch(in, kv, rotary, kernels));
		return residual(h, this.ffnNorm, this.postFfnNorm, (in) -> {
			if (fusable) {
				return kernels.feedForwardRows(in, ff, rows);
			}
			NDList outputs = new NDList(states.length);
			for (int i = 0; i < states.length; i++) {
				outputs.add(this.feedForward.forward(in.get(i + ":" + (i + 1)), FeedForward.Phase.GENERATION, states[i],
						kernels));
			}
			return NDArrays.concat(outputs);
		});
	}

}

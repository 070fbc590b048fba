package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Causal grouped-query self-attention with rotary embeddings (none where the model learns
 * absolute positions instead, as OPT does) and an optional sliding window. The G = H /
 * KVH query heads that share a key/value head are folded into the row dimension, so keys
 * and values are never repeated. A decode step (T = 1) takes a path with no transposes:
 * each operation costs microseconds of overhead, which a 135M-parameter model notices.
 * The projections run in the weights' precision; the arithmetic between them (rotary,
 * scores, softmax, weighted values) and the KV cache in
 * {@link ModelOptions#attentionDataType()}.
 */
public final class Attention {

	/**
	 * @param queryKeyValue [(H + 2*KVH)*Dh, D], q, k and v projections stacked
	 * @param queryKeyValueBias [(H + 2*KVH)*Dh] or null
	 * @param output [D, H*Dh]
	 * @param scaleFolded whether the 1/sqrt(Dh) score scale is already in the query rows
	 * @param outputBias [D] or null (OPT's output projection has one)
	 */
	public record Weights(NDArray queryKeyValue, NDArray queryKeyValueBias, NDArray output, boolean scaleFolded,
			NDArray outputBias) {

		/** Weights whose output projection has no bias. */
		public Weights(NDArray queryKeyValue, NDArray queryKeyValueBias, NDArray output, boolean scaleFolded) {
			this(queryKeyValue, queryKeyValueBias, output, scaleFolded, null);
		}

	}

	private final Weights weights;

	private final int layer;

	private final int heads;

	private final int keyValueHeads;

	private final int headDimension;

	private final float scale;

	private final NDIndex queryKeyColumns;

	private final NDIndex valueColumns;

	private final NDIndex queryHeads;

	private final NDIndex keyHeads;

	private final DataType arithmeticType;

	private final RmsNorm queryNorm;

	private final RmsNorm keyNorm;

	private final float softCap;

	private final boolean rotates;

	/**
	 * @param arithmeticType the precision of rotary, scores, softmax and weighted values
	 * (the KV cache's); the projections keep the weights' precision
	 */
	public Attention(ModelConfig config, int layer, Weights weights, DataType arithmeticType) {
		this(config, layer, weights, arithmeticType, null, null);
	}

	/**
	 * @param queryNorm the RMS norm of each query head before the rotation (Gemma 3), or
	 * null
	 * @param keyNorm the same for each key head, null exactly when queryNorm is
	 */
	public Attention(ModelConfig config, int layer, Weights weights, DataType arithmeticType, RmsNorm queryNorm,
			RmsNorm keyNorm) {
		if ((queryNorm == null) != (keyNorm == null)) {
			throw new IllegalArgumentException("queries and keys are normed both or neither");
		}
		if (queryNorm != null && weights.scaleFolded()) {
			throw new IllegalArgumentException("a score scale in the query rows would be normed away");
		}
		this.queryNorm = queryNorm;
		this.keyNorm = keyNorm;
		this.softCap = (float) config.attentionSoftCap();
		this.rotates = !config.learnsPositions();
		this.weights = weights;
		this.arithmeticType = arithmeticType;
		this.layer = layer;
		this.heads = config.numberOfAttentionHeads();
		this.keyValueHeads = config.numberOfKeyValueHeads();
		this.headDimension = config.headDimension();
		this.scale = scale(config);
		long qk = (long) (this.heads + this.keyValueHeads) * this.headDimension;
		this.queryKeyColumns = new NDIndex().addAllDim().addSliceDim(0, qk);
		this.valueColumns = new NDIndex().addAllDim()
			.addSliceDim(qk, qk + (long) this.keyValueHeads * this.headDimension);
		this.queryHeads = new NDIndex().addAllDim().addSliceDim(0, this.heads);
		this.keyHeads = new NDIndex().addAllDim().addSliceDim(this.heads, this.heads + this.keyValueHeads);
	}

	Weights weights() {
		return this.weights;
	}

	int layer() {
		return this.layer;
	}

	int heads() {
		return this.heads;
	}

	/**
	 * Whether the fused layer module ({@link BatchLayer}) can compute this attention: it
	 * knows rotated queries and keys that are not normed, scores without a soft cap, and
	 * an output projection without a bias.
	 */
	boolean fusable() {
		return this.queryNorm == null && this.rotates && this.softCap == 0 && this.weights.outputBias() == null;
	}

	/** The scores' scale, or NaN when the query rows already carry it. */
	double scoreScale() {
		return this.weights.scaleFolded() ? Double.NaN : this.scale;
	}

	public static float scale(ModelConfig config) {
		return config.attentionScale();
	}

	/**
	 * Whether multiplying the query rows by the score scale is exact: true for a power of
	 * two (any even power of two head dimension), where scaling q or the scores gives
	 * bit-identical results, unless the queries are normed after their product.
	 */
	public static boolean scaleFoldsExactly(ModelConfig config) {
		float scale = scale(config);
		return scale == Math.scalb(1.0f, Math.getExponent(scale)) && !config.architecture().normsQueryKey();
	}

	/**
	 * x: [T, D] at positions [position, position + T) -> [T, D]; appends k and v to the
	 * cache. The projections run as {@code kernels} says.
	 */
	public NDArray forward(NDArray x, Positions positions, KvCache cache, Kernels kernels) {
		int t = (int) x.getShape().get(0);
		int position = positions.position();
		int dh = this.headDimension;
		int h = this.heads;
		int kvh = this.keyValueHeads;
		int g = h / kvh;
		NDArray projected = kernels.linear(x, this.weights.queryKeyValue(), this.weights.queryKeyValueBias());
		DataType projectionType = projected.getDataType();
		NDArray qkv = arithmetic(projected);
		// [T, H+KVH, Dh]
		NDArray qk = rotated(qkv, positions.rotary(), t);
		NDArray v = qkv.get(this.valueColumns); // [T, KVH*Dh]
		NDArray context;
		if (t == 1) {
			// [1, H*Dh]
			context = attendOne(qk, v, cache, position, positions.keyStart());
		}
		else {
			// [KVH, G*T, Dh]
			NDArray q = qk.get(this.queryHeads).transpose(1, 0, 2).reshape(kvh, (long) g * t, dh);
			NDArray k = qk.get(this.keyHeads).transpose(1, 0, 2); // [KVH, T, Dh]
			cache.write(this.layer, position, k, v.reshape(t, kvh, dh).transpose(1, 0, 2));
			int end = position + t;
			int start = positions.keyStart();
			// [KVH, S, Dh] each
			NDArray keys = widened(cache.keys(this.layer, start, end), q);
			NDArray values = widened(cache.values(this.layer, start, end), q);
			NDArray scores = q.matMul(keys.transpose(0, 2, 1)); // [KVH, G*T, S]
			if (!this.weights.scaleFolded()) {
				scores = scores.mul(this.scale);
			}
			scores = capped(scores);
			// [KVH, G, T, M] += [T, M] in place over the last M keys (a view of the
			// scores): one mask for every head
			long s = end - start;
			long width = positions.mask().getShape().get(1);
			NDArray grouped = scores.reshape(kvh, g, t, s);
			NDArray masked = (width == s) ? grouped
					: grouped.get(new NDIndex().addAllDim().addAllDim().addAllDim().addSliceDim(s - width, s));
			masked.addi(positions.mask());
			// [KVH, G*T, Dh] -> [T, H*Dh]
			context = weightedValues(scores, values).reshape(h, t, dh).transpose(1, 0, 2).reshape(t, (long) h * dh);
		}
		return output(context, projectionType, kernels);
	}

	/**
	 * One generated token for each of B sequences: x [B, D], row b at its position of its
	 * cache ({@code kv}) -> [B, D]. The projections run once for the batch; each row
	 * attends over its own cache exactly as a decode step of that sequence alone does:
	 * gathered out of their arena in one go when {@code kv} has that form, else row by
	 * row.
	 * @param rotary the rotation of each row's position
	 */
	NDArray forwardBatch(NDArray x, BatchKv kv, RotaryEmbedding.Angles rotary, Kernels kernels) {
		int b = kv.rows();
		NDArray projected = kernels.linear(x, this.weights.queryKeyValue(), this.weights.queryKeyValueBias());
		DataType projectionType = projected.getDataType();
		NDArray qkv = arithmetic(projected);
		NDArray qk = rotated(qkv, rotary, b); // [B, H+KVH, Dh]
		NDArray v = qkv.get(this.valueColumns); // [B, KVH*Dh]
		double scale = scoreScale();
		NDArray context; // [B, H*Dh]
		if (kv.arena != null) {
			context = BatchAttention.attendGathered(qk, v, kv.arena.keys(this.layer), kv.arena.values(this.layer),
					kv.write, kv.gather, kv.masked, this.heads, scale, this.softCap);
		}
		else {
			NDArray[] keys = new NDArray[b];
			NDArray[] values = new NDArray[b];
			long[] at = new long[b];
			for (int i = 0; i < b; i++) {
				keys[i] = kv.caches[i].layerKeys(this.layer);
				values[i] = kv.caches[i].layerValues(this.layer);
				at[i] = kv.positions[i];
			}
			// each row's cache write and attention, as attendOne computes them, in one
			// call
			context = BatchAttention.attend(qk, v, keys, values, at, kv.starts, this.heads, scale, this.softCap);
		}
		return output(context, projectionType, kernels); // [B, D]
	}

	/** The q, k and v projections of T rows in the arithmetic type. */
	private NDArray arithmetic(NDArray qkv) {
		return (qkv.getDataType() == this.arithmeticType) ? qkv : qkv.toType(this.arithmeticType, false);
	}

	/**
	 * q and k of T rows, normed where the layer norms them, rotated where the model
	 * rotates them: [T, H+KVH, Dh].
	 */
	private NDArray rotated(NDArray qkv, RotaryEmbedding.Angles rotary, int t) {
		NDArray qk = qkv.get(this.queryKeyColumns).reshape(t, this.heads + this.keyValueHeads, this.headDimension);
		if (this.queryNorm != null) {
			qk = this.queryNorm.forward(qk.get(this.queryHeads)).concat(this.keyNorm.forward(qk.get(this.keyHeads)), 1);
		}
		return this.rotates ? rotary.apply(qk) : qk;
	}

	/**
	 * One token's attention: qk [1, H+KVH, Dh] rotated and v [1, KVH*Dh] at
	 * {@code position}, over the cached keys from {@code start} -> [1, H*Dh].
	 */
	private NDArray attendOne(NDArray qk, NDArray v, KvCache cache, int position, int start) {
		int kvh = this.keyValueHeads;
		int dh = this.headDimension;
		NDArray q = qk.get(this.queryHeads).reshape(kvh, this.heads / kvh, dh); // [KVH,
																				// G, Dh]
		NDArray k = qk.get(this.keyHeads).reshape(kvh, 1, dh); // [KVH, 1, Dh]
		cache.write(this.layer, position, k, v.reshape(kvh, 1, dh));
		// [KVH, S, Dh] each
		NDArray keys = widened(cache.keys(this.layer, start, position + 1), q);
		NDArray values = widened(cache.values(this.layer, start, position + 1), q);
		NDArray scores = q.matMul(keys.transpose(0, 2, 1)); // [KVH, G, S]
		if (!this.weights.scaleFolded()) {
			scores = scores.mul(this.scale);
		}
		return weightedValues(capped(scores), values).reshape(1, (long) this.heads * dh);
	}

	/**
	 * Cached keys or values in the queries' type: a float16 cache
	 * ({@link ModelOptions#cacheDataType()}) widened for float32 attention.
	 */
	private static NDArray widened(NDArray cached, NDArray queries) {
		DataType type = queries.getDataType();
		return (cached.getDataType() == type) ? cached : cached.toType(type, false);
	}

	/** The scaled scores soft-capped where the model caps them (Gemma 2). */
	private NDArray capped(NDArray scores) {
		return (this.softCap > 0) ? scores.div(this.softCap).tanh().mul(this.softCap) : scores;
	}

	/** softmax(scores) values, the softmax in float32. */
	private static NDArray weightedValues(NDArray scores, NDArray values) {
		NDArray probabilities = (scores.getDataType() == DataType.FLOAT32) ? scores.softmax(-1)
				: scores.toType(DataType.FLOAT32, false).softmax(-1).toType(scores.getDataType(), false);
		return probabilities.matMul(values);
	}

	/**
	 * The output projection of the heads' contexts [T, H*Dh], in the projections' type.
	 */
	private NDArray output(NDArray context, DataType projectionType, Kernels kernels) {
		NDArray c = (context.getDataType() == projectionType) ? context : context.toType(projectionType, false);
		return kernels.linear(c, this.weights.output(), this.weights.outputBias());
	}

	/**
	 * The positions of T tokens from {@code position}, with the mask every layer of the
	 * pass that attends within {@code window} (0: no window) shares. Without a sliding
	 * window every key before the block is visible to all of its queries, so the mask
	 * covers only the block's own T keys: masking a long context's chunk then touches T x
	 * T scores, not T x S.
	 */
	public static Positions positions(int window, NDManager manager, RotaryEmbedding.Angles rotary, int position, int t,
			DataType type) {
		int end = position + t;
		int start = keyStart(window, position);
		NDArray mask;
		if (t == 1) {
			mask = null; // one query sees every key of [start, end): its window ends
							// there
		}
		else if (window > 0) {
			mask = mask(manager, t, position, start, end, window, type);
		}
		else {
			mask = mask(manager, t, position, position, end, 0, type);
		}
		return new Positions(position, rotary, start, mask, window);
	}

	/**
	 * The first cached position a block of queries from {@code position} attends to: 0,
	 * or with a sliding window W the first key its first query still sees.
	 */
	static int keyStart(int slidingWindow, int position) {
		return (slidingWindow > 0) ? Math.max(0, position - slidingWindow + 1) : 0;
	}

	/**
	 * Additive mask [T, S]: query i (absolute position position + i) sees key j (absolute
	 * start + j) when start + j <= position + i and, with a sliding window W, position +
	 * i - (start + j) < W.
	 */
	static NDArray mask(NDManager manager, int t, int position, int start, int end, int slidingWindow, DataType type) {
		int s = end - start;
		float[] mask = new float[t * s];
		for (int i = 0; i < t; i++) {
			int query = position + i;
			for (int j = 0; j < s; j++) {
				int key = start + j;
				boolean visible = key <= query && (slidingWindow == 0 || query - key < slidingWindow);
				mask[i * s + j] = visible ? 0f : Float.NEGATIVE_INFINITY;
			}
		}
		NDArray result = manager.create(mask, new Shape(t, s));
		return (type == DataType.FLOAT32) ? result : result.toType(type, false);
	}

}

package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;

/**
 * Causal grouped-query self-attention with rotary embeddings and an optional sliding
 * window. The G = H / KVH query heads that share a key/value head are folded into the row
 * dimension, so keys and values are never repeated.
 */
public final class Attention {

	/**
	 * @param queryKeyValue [(H + 2*KVH)*Dh, D], q, k and v projections stacked
	 * @param queryKeyValueBias [(H + 2*KVH)*Dh] or null
	 * @param output [D, H*Dh]
	 */
	public record Weights(NDArray queryKeyValue, NDArray queryKeyValueBias, NDArray output) {

	}

	private final Weights weights;

	private final RotaryEmbedding rotary;

	private final int layer;

	private final int heads;

	private final int keyValueHeads;

	private final int headDimension;

	private final int slidingWindow;

	private final float scale;

	public Attention(ModelConfig config, int layer, Weights weights, RotaryEmbedding rotary) {
		this.weights = weights;
		this.rotary = rotary;
		this.layer = layer;
		this.heads = config.numberOfAttentionHeads();
		this.keyValueHeads = config.numberOfKeyValueHeads();
		this.headDimension = config.headDimension();
		this.slidingWindow = config.slidingWindow();
		this.scale = (float) Math.pow(this.headDimension, -0.5);
	}

	/**
	 * x: [T, D] at positions [position, position + T) -> [T, D]; appends k and v to the
	 * cache.
	 */
	public NDArray forward(NDArray x, int position, KvCache cache) {
		long t = x.getShape().get(0);
		int dh = this.headDimension;
		int h = this.heads;
		int kvh = this.keyValueHeads;
		int g = h / kvh;
		NDArray qkv = Linear.linear(x, this.weights.queryKeyValue(), this.weights.queryKeyValueBias())
			.singletonOrThrow(); // [T, (H+2KVH)*Dh]
		NDArray qk = qkv.get(new NDIndex(":, :{}", (h + kvh) * dh)).reshape(t, h + kvh, dh); // [T,
																								// H+KVH,
																								// Dh]
		qk = this.rotary.apply(qk, position); // [T, H+KVH, Dh]
		NDArray q = qk.get(new NDIndex(":, :{}, :", h)); // [T, H, Dh]
		NDArray k = qk.get(new NDIndex(":, {}:, :", h)).transpose(1, 0, 2); // [KVH, T,
																			// Dh]
		NDArray v = qkv.get(new NDIndex(":, {}:", (h + kvh) * dh)).reshape(t, kvh, dh).transpose(1, 0, 2); // [KVH,T,Dh]
		cache.write(this.layer, position, k, v);

		int end = position + (int) t;
		int start = (this.slidingWindow > 0) ? Math.max(0, end - this.slidingWindow - (int) t + 1) : 0;
		NDArray keys = cache.keys(this.layer, start, end); // [KVH, S, Dh]
		NDArray values = cache.values(this.layer, start, end); // [KVH, S, Dh]
		NDArray grouped = q.transpose(1, 0, 2).reshape(kvh, g * t, dh); // [KVH, G*T, Dh]
		NDArray scores = grouped.matMul(keys.transpose(0, 2, 1)).mul(this.scale); // [KVH,
																					// G*T,
																					// S]
		if (t > 1 || this.slidingWindow > 0) {
			scores = scores.add(mask(x.getManager(), (int) t, position, start, end, g, scores.getDataType()));
		}
		NDArray probabilities = (scores.getDataType() == DataType.FLOAT32) ? scores.softmax(-1)
				: scores.toType(DataType.FLOAT32, false).softmax(-1).toType(scores.getDataType(), false);
		NDArray context = probabilities.matMul(values) // [KVH, G*T, Dh]
			.reshape(h, t, dh)
			.transpose(1, 0, 2)
			.reshape(t, (long) h * dh); // [T, H*Dh]
		return Linear.linear(context, this.weights.output()).singletonOrThrow(); // [T, D]
	}

	/**
	 * Additive mask [G*T, S]: query i (absolute position position + i) sees key j
	 * (absolute start + j) when start + j <= position + i and, with a sliding window W,
	 * position + i - (start + j) < W.
	 */
	private NDArray mask(NDManager manager, int t, int position, int start, int end, int groups, DataType type) {
		int s = end - start;
		float[] mask = new float[groups * t * s];
		for (int i = 0; i < t; i++) {
			int query = position + i;
			for (int j = 0; j < s; j++) {
				int key = start + j;
				boolean visible = key <= query && (this.slidingWindow == 0 || query - key < this.slidingWindow);
				mask[i * s + j] = visible ? 0f : Float.NEGATIVE_INFINITY;
			}
		}
		for (int group = 1; group < groups; group++) {
			System.arraycopy(mask, 0, mask, group * t * s, t * s);
		}
		NDArray result = manager.create(mask, new Shape(groups * t, s));
		return (type == DataType.FLOAT32) ? result : result.toType(type, false);
	}

}

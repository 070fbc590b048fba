package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Layer norm with a bias (OPT):
 * {@code (x - mean(x)) / sqrt(var(x) + eps) * weight + bias}, computed in float32
 * whatever the model's precision and returned in x's type, as libtorch's own
 * half-precision layer norm accumulates in float32.
 */
public final class LayerNorm implements Norm {

	private final NDArray weight; // [D] float32

	private final NDArray bias; // [D] float32

	private final float epsilon;

	private final Shape normalizedShape;

	/**
	 * @param weight [D], in any float type
	 * @param bias [D], in any float type
	 */
	public LayerNorm(NDArray weight, NDArray bias, double epsilon) {
		if (!weight.getShape().equals(bias.getShape()) || weight.getShape().dimension() != 1) {
			throw new IllegalArgumentException(
					"a layer norm needs a weight and a bias of the same shape [D], got %s and %s"
						.formatted(weight.getShape(), bias.getShape()));
		}
		this.weight = float32(weight);
		this.bias = float32(bias);
		this.epsilon = (float) epsilon;
		this.normalizedShape = weight.getShape();
	}

	private static NDArray float32(NDArray array) {
		return (array.getDataType() == DataType.FLOAT32) ? array : array.toType(DataType.FLOAT32, false);
	}

	@Override
	public NDArray forward(NDArray x) {
		DataType type = x.getDataType();
		NDArray x32 = (type == DataType.FLOAT32) ? x : x.toType(DataType.FLOAT32, false);
		NDArray normed = ai.djl.nn.norm.LayerNorm
			.layerNorm(x32, this.normalizedShape, this.weight, this.bias, this.epsilon)
			.singletonOrThrow();
		return (type == DataType.FLOAT32) ? normed : normed.toType(type, false);
	}

}

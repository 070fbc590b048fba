package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;

/**
 * Root-mean-square layer norm, computed in float32 whatever the model's precision, as
 * Hugging Face does: {@code weight * (x / sqrt(mean(x^2) + eps))}.
 */
public final class RmsNorm implements Norm {

	private final NDArray weight; // [D]

	private final NDArray epsilon; // [1]: an array operand saves creating a scalar array
									// per call

	private final float epsilonValue;

	public RmsNorm(NDArray weight, double epsilon) {
		this.weight = weight;
		this.epsilonValue = (float) epsilon;
		this.epsilon = weight.getManager().create(new float[] { this.epsilonValue });
	}

	/** The scale, [D]. */
	NDArray weight() {
		return this.weight;
	}

	/** Epsilon as a [1] float32 array. */
	NDArray epsilon() {
		return this.epsilon;
	}

	/** Epsilon in float32, as {@link #epsilon()} holds it. */
	float epsilonValue() {
		return this.epsilonValue;
	}

	/** x: [T, D] -> [T, D]. */
	@Override
	public NDArray forward(NDArray x) {
		DataType type = x.getDataType();
		NDArray x32 = (type == DataType.FLOAT32) ? x : x.toType(DataType.FLOAT32, false);
		NDArray variance = x32.square().mean(new int[] { -1 }, true); // [T, 1]
		NDArray normalised = x32.div(variance.add(this.epsilon).sqrt()); // [T, D]
		if (type != DataType.FLOAT32) {
			normalised = normalised.toType(type, false);
		}
		return normalised.mul(this.weight);
	}

}

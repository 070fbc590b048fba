package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;

/** A normalisation of each row of the residual stream: RMSNorm or LayerNorm. */
public interface Norm {

	/** x: [T, D] -> [T, D], in x's type. */
	NDArray forward(NDArray x);

}

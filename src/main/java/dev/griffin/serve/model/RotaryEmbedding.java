package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Rotary position embedding in Hugging Face's "rotate half" layout:
 * {@code x * cos + rotateHalf(x) * sin}, with {@code rotateHalf(x) = cat(-x2, x1)}
 * expressed as a multiplication by a signed permutation matrix (exact, and one operation
 * instead of four).
 */
public final class RotaryEmbedding {

	private final NDArray cos; // [P, Dh]

	private final NDArray sin; // [P, Dh]

	private final NDArray rotateHalf; // [Dh, Dh]

	private final NDArray identity; // [Dh, Dh]

	public RotaryEmbedding(ModelConfig config, NDManager manager, DataType type) {
		this(config, config.ropeTheta(), config.ropeScaling(), manager, type);
	}

	/**
	 * With a rotary base and scaling of its own (Gemma 3's local layers).
	 */
	public RotaryEmbedding(ModelConfig config, double theta, RopeScaling scaling, NDManager manager, DataType type) {
		int dim = config.headDimension();
		int positions = config.maxPositionEmbeddings();
		float[] inverseFrequencies = inverseFrequencies(dim, theta, scaling);
		// Angles in float32 from the same float32 operands Hugging Face uses, then cos
		// and sin by libtorch.
		try (NDManager scratch = manager.newSubManager()) {
			// [1, Dh/2]
			NDArray inv = scratch.create(inverseFrequencies).reshape(1, dim / 2);
			// [P, 1]
			NDArray pos = scratch.arange(0, positions, 1, DataType.FLOAT32).reshape(positions, 1);
			NDArray freqs = pos.matMul(inv); // [P, Dh/2]
			NDArray angles = freqs.concat(freqs, 1); // [P, Dh]
			this.cos = angles.cos().toType(type, false);
			this.sin = angles.sin().toType(type, false);
			this.cos.attach(manager);
			this.sin.attach(manager);
		}
		float[] rotation = new float[dim * dim];
		int half = dim / 2;
		for (int j = 0; j < half; j++) {
			// out[j] = -x[j + half]; out[j + half] = x[j] (row = input index, column =
			// output index)
			rotation[(j + half) * dim + j] = -1f;
			rotation[j * dim + j + half] = 1f;
		}
		NDArray rotate = manager.create(rotation, new Shape(dim, dim));
		this.rotateHalf = (type == DataType.FLOAT32) ? rotate : rotate.toType(type, false);
		if (this.rotateHalf != rotate) {
			rotate.close();
		}
		this.identity = manager.eye(dim).toType(type, false);
	}

	static float[] inverseFrequencies(int dim, double theta, RopeScaling scaling) {
		float[] inv = new float[dim / 2];
		for (int i = 0; i < inv.length; i++) {
			float exponent = (float) (2 * i) / dim;
			inv[i] = (float) (1.0 / (float) Math.pow(theta, exponent));
		}
		if (scaling.type() == RopeScaling.Type.LINEAR) {
			float factor = (float) scaling.factor();
			for (int i = 0; i < inv.length; i++) {
				inv[i] /= factor;
			}
		}
		if (scaling.type() == RopeScaling.Type.LLAMA3) {
			float factor = (float) scaling.factor();
			float low = (float) scaling.lowFrequencyFactor();
			float high = (float) scaling.highFrequencyFactor();
			float original = scaling.originalMaxPositionEmbeddings();
			float lowWavelength = original / low;
			float highWavelength = original / high;
			for (int i = 0; i < inv.length; i++) {
				float wavelength = (float) (2 * Math.PI) / inv[i];
				float scaled = (wavelength > lowWavelength) ? inv[i] / factor : inv[i];
				if (!(wavelength < highWavelength) && !(wavelength > lowWavelength)) {
					float smooth = (original / wavelength - low) / (high - low);
					scaled = (1 - smooth) * scaled / factor + smooth * scaled;
				}
				inv[i] = scaled;
			}
		}
		return inv;
	}

	/**
	 * The rotation of T positions from {@code position} as one matrix per position,
	 * {@code M_t = I * cos_t + R * sin_t} (columns scaled), so that each layer rotates q
	 * and k with a single batched product {@code x M}. Computed once per forward pass and
	 * shared by all layers.
	 */
	public Angles angles(int position, int t) {
		NDIndex rows = new NDIndex().addSliceDim(position, position + t);
		return rotation(this.cos.get(rows), this.sin.get(rows));
	}

	/**
	 * The rotation of B positions in any order (one generated token of each of B
	 * sequences), as {@link #angles(int, int)} computes it for each: [B, Dh, Dh].
	 * @param manager the pass's manager, owner of the index
	 */
	public Angles angles(int[] positions, NDManager manager) {
		long[] rows = new long[positions.length];
		for (int i = 0; i < rows.length; i++) {
			rows[i] = positions[i];
		}
		NDArray index = manager.create(rows);
		return rotation(this.cos.get(index), this.sin.get(index));
	}

	/** {@code M_t = I * cos_t + R * sin_t} for the rows cos, sin [T, Dh]: [T, Dh, Dh]. */
	private Angles rotation(NDArray cos, NDArray sin) {
		return new Angles(this.identity.mul(cos.expandDims(1)).add(this.rotateHalf.mul(sin.expandDims(1))));
	}

	/**
	 * Rotary matrices of a block of positions.
	 *
	 * @param rotation [T, Dh, Dh]
	 */
	public record Angles(NDArray rotation) {

		/** x: [T, N, Dh] -> [T, N, Dh]. */
		public NDArray apply(NDArray x) {
			return x.matMul(this.rotation);
		}

	}

}

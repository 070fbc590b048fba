package dev.griffin.serve.weights;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

import dev.griffin.serve.model.Attention;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.DecoderLayer;
import dev.griffin.serve.model.DenseFeedForward;
import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.model.RmsNorm;
import dev.griffin.serve.model.RotaryEmbedding;

/**
 * Turns a checkpoint into the dense model: each tensor is copied to the device in the
 * model's precision, the attention projections and the gate and up projections stacked
 * into one matrix each.
 */
public final class ModelBuilder {

	private ModelBuilder() {
	}

	/**
	 * Builds the dense model from a checkpoint, one layer at a time.
	 * @param progress told the number of layers loaded so far
	 */
	public static CausalLm build(Checkpoint checkpoint, ModelOptions options, NDManager manager, IntConsumer progress) {
		ModelConfig config = checkpoint.config();
		DataType type = options.dtype().dataType();
		Device device = options.djlDevice();
		NDManager owner = manager.newSubManager(device);
		try {
			NDArray embedding = upload(owner, checkpoint.embedding(), type);
			FloatTensor head = checkpoint.lmHead();
			NDArray lmHead = (head != null) ? upload(owner, head, type) : embedding;
			RmsNorm finalNorm = new RmsNorm(upload(owner, checkpoint.finalNorm(), type), config.rmsNormEpsilon());
			RotaryEmbedding rotary = new RotaryEmbedding(config, owner, options.attentionDataType());
			List<DecoderLayer> layers = new ArrayList<>();
			for (int i = 0; i < config.numberOfLayers(); i++) {
				LayerTensors t = checkpoint.layer(i);
				// An exact (power-of-two) score scale moves into the query rows: one
				// operation less per layer.
				boolean fold = Attention.scaleFoldsExactly(config);
				float scale = fold ? Attention.scale(config) : 1f;
				// [(H+2KVH)*Dh, D]
				NDArray qkv = upload(owner, type, scaled(t.query(), scale), t.key(), t.value());
				NDArray qkvBias = t.hasAttentionBias()
						? upload(owner, type, scaled(t.queryBias(), scale), t.keyBias(), t.valueBias()) : null;
				NDArray gateUp = upload(owner, type, t.gate(), t.up()); // [2F, D]
				Attention attention = new Attention(config, i,
						new Attention.Weights(qkv, qkvBias, upload(owner, t.output(), type), fold),
						options.attentionDataType());
				FeedForward.Weights ff = new FeedForward.Weights(gateUp, upload(owner, t.down(), type),
						config.intermediateSize());
				layers
					.add(new DecoderLayer(new RmsNorm(upload(owner, t.attentionNorm(), type), config.rmsNormEpsilon()),
							attention, new RmsNorm(upload(owner, t.ffnNorm(), type), config.rmsNormEpsilon()),
							new DenseFeedForward(ff)));
				progress.accept(i + 1);
			}
			return new CausalLm(config, options, owner, embedding, lmHead, finalNorm, rotary, layers);
		}
		catch (RuntimeException ex) {
			owner.close();
			throw ex;
		}
	}

	/**
	 * Copies tensors, stacked along their first dimension, to the device in the model's
	 * precision.
	 */
	private static NDArray upload(NDManager manager, DataType type, FloatTensor... tensors) {
		FloatTensor stacked = (tensors.length == 1) ? tensors[0] : stack(tensors);
		NDArray array = manager.create(stacked.data(), new Shape(stacked.shape()));
		if (type == DataType.FLOAT32) {
			return array;
		}
		NDArray converted = array.toType(type, false);
		array.close();
		return converted;
	}

	private static NDArray upload(NDManager manager, FloatTensor tensor, DataType type) {
		return upload(manager, type, tensor);
	}

	private static FloatTensor stack(FloatTensor... tensors) {
		int total = 0;
		long rows = 0;
		for (FloatTensor tensor : tensors) {
			total += tensor.data().length;
			rows += tensor.shape()[0];
		}
		float[] data = new float[total];
		int offset = 0;
		for (FloatTensor tensor : tensors) {
			System.arraycopy(tensor.data(), 0, data, offset, tensor.data().length);
			offset += tensor.data().length;
		}
		long[] shape = tensors[0].shape().clone();
		shape[0] = rows;
		return new FloatTensor(data, shape);
	}

	private static FloatTensor scaled(FloatTensor tensor, float scale) {
		if (scale == 1f) {
			return tensor;
		}
		float[] data = tensor.data().clone();
		for (int i = 0; i < data.length; i++) {
			data[i] *= scale;
		}
		return new FloatTensor(data, tensor.shape());
	}

}

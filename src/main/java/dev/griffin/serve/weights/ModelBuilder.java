package dev.griffin.serve.weights;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.IntConsumer;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.griffin.serve.model.Attention;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.DecoderLayer;
import dev.griffin.serve.model.DenseFeedForward;
import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.LayerNorm;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.model.Norm;
import dev.griffin.serve.model.PackedWeights;
import dev.griffin.serve.model.RmsNorm;
import dev.griffin.serve.model.RopeScaling;
import dev.griffin.serve.model.RotaryEmbedding;

/**
 * Turns a checkpoint into the dense model: each tensor is copied to the device in the
 * model's precision, the attention projections and the gate and up projections stacked
 * into one matrix each.
 */
public final class ModelBuilder {

	private static final Logger logger = LoggerFactory.getLogger(ModelBuilder.class);

	private ModelBuilder() {
	}

	/** An RMS norm of the weight a checkpoint holds, or null where it holds none. */
	private static RmsNorm norm(WeightUpload upload, TensorRows weight, double epsilon) {
		return (weight == null) ? null : new RmsNorm(upload.stacked(weight), epsilon);
	}

	/**
	 * A layer norm of the weight and bias a checkpoint holds where it holds a bias, else
	 * an RMS norm of the weight (or null where it holds none).
	 */
	private static Norm norm(WeightUpload upload, TensorRows weight, TensorRows bias, double epsilon) {
		if (bias == null) {
			return norm(upload, weight, epsilon);
		}
		return new LayerNorm(upload.stacked(weight), upload.stacked(bias), epsilon);
	}

	private static NDArray optional(WeightUpload upload, TensorRows tensor) {
		return (tensor == null) ? null : upload.stacked(tensor);
	}

	/**
	 * Builds the dense model from a checkpoint, one layer at a time.
	 * @param progress told the number of layers loaded so far
	 */
	public static CausalLm build(Checkpoint checkpoint, ModelOptions options, NDManager manager, IntConsumer progress) {
		ModelConfig config = checkpoint.config();
		DataType type = options.dtype().dataType();
		Device device = options.djlDevice();
		long startNanos = System.nanoTime();
		ResidentMemory.Sample before = ResidentMemory.sample();
		NDManager owner = manager.newSubManager(device);
		try (WeightUpload upload = new WeightUpload(owner, type)) {
			NDArray embedding = upload.stacked(checkpoint.embedding());
			TensorRows head = checkpoint.lmHead();
			NDArray lmHead = (head != null) ? upload.stacked(head) : embedding;
			double epsilon = config.rmsNormEpsilon();
			Norm finalNorm = norm(upload, checkpoint.finalNorm(), checkpoint.finalNormBias(), epsilon);
			RotaryEmbedding rotary = null;
			RotaryEmbedding windowedRotary = null;
			CausalLm.LearnedPositions learned = null;
			if (config.learnsPositions()) {
				learned = new CausalLm.LearnedPositions(upload.stacked(checkpoint.positionEmbedding()),
						optional(upload, checkpoint.projectIn()), optional(upload, checkpoint.projectOut()));
			}
			else {
				rotary = new RotaryEmbedding(config, owner, options.attentionDataType());
				windowedRotary = (config.windowedRopeTheta() > 0) ? new RotaryEmbedding(config,
						config.windowedRopeTheta(), RopeScaling.NONE, owner, options.attentionDataType()) : rotary;
			}
			List<DecoderLayer> layers = new ArrayList<>();
			for (int i = 0; i < config.numberOfLayers(); i++) {
				LayerTensors t = checkpoint.layer(i);
				// An exact (power-of-two) score scale moves into the query rows: one
				// operation less per layer.
				boolean fold = Attention.scaleFoldsExactly(config);
				float scale = fold ? Attention.scale(config) : 1f;
				// [(H+2KVH)*Dh, D]
				NDArray qkv = upload.stacked(t.query().scaled(scale), t.key(), t.value());
				NDArray qkvBias = t.hasAttentionBias()
						? upload.stacked(t.queryBias().scaled(scale), t.keyBias(), t.valueBias()) : null;
				Attention attention = new Attention(config, i,
						new Attention.Weights(qkv, qkvBias, upload.stacked(t.output()), fold,
								optional(upload, t.outputBias())),
						options.attentionDataType(), norm(upload, t.queryNorm(), epsilon),
						norm(upload, t.keyNorm(), epsilon));
				FeedForward.Weights ff;
				if (t.gate() != null) {
					NDArray gateUp = upload.stacked(t.gate(), t.up()); // [2F, D]
					ff = new FeedForward.Weights(gateUp, upload.stacked(t.down()), config.intermediateSize(),
							config.hiddenActivation());
				}
				else {
					ff = FeedForward.Weights.ungated(upload.stacked(t.up()), optional(upload, t.upBias()),
							upload.stacked(t.down()), optional(upload, t.downBias()), config.intermediateSize(),
							config.hiddenActivation());
				}
				layers.add(new DecoderLayer(norm(upload, t.attentionNorm(), t.attentionNormBias(), epsilon), attention,
						norm(upload, t.ffnNorm(), t.ffnNormBias(), epsilon), new DenseFeedForward(ff),
						norm(upload, t.postAttentionNorm(), epsilon), norm(upload, t.postFfnNorm(), epsilon),
						config.postNorm()));
				progress.accept(i + 1);
			}
			logger.info("weights: {} MiB of {} on {} in {} s; {}", upload.bytes() >> 20,
					type.name().toLowerCase(Locale.ROOT), device,
					"%.1f".formatted((System.nanoTime() - startNanos) / 1e9), ResidentMemory.since(before));
			CausalLm model = (learned != null)
					? new CausalLm(config, options, owner, embedding, lmHead, finalNorm, learned, layers)
					: new CausalLm(config, options, owner, embedding, lmHead, finalNorm, rotary, windowedRotary,
							layers);
			if (options.packsWeights()) {
				long packStart = System.nanoTime();
				model = model.withPackedWeights();
				PackedWeights packed = model.kernels().packed();
				logger.info("packed weights: {} matrices, {} MiB for oneDNN's products in {} s; {}", packed.size(),
						packed.bytes() >> 20, "%.1f".formatted((System.nanoTime() - packStart) / 1e9),
						ResidentMemory.since(before));
			}
			return model;
		}
		catch (RuntimeException ex) {
			owner.close();
			throw ex;
		}
	}

}

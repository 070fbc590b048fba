package dev.griffin.serve.generation;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.function.IntConsumer;

import ai.djl.ndarray.NDManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.griffin.serve.weights.ModelBuilder;
import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.GriffinTransform;
import dev.griffin.serve.griffin.NeuronPrior;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.KernelCalibration;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.weights.NativeAllocator;
import dev.griffin.serve.weights.ResidentMemory;
import dev.griffin.serve.tokenizer.Tokenizer;
import dev.griffin.serve.weights.Checkpoint;
import dev.griffin.serve.weights.CheckpointException;
import dev.griffin.serve.weights.GgufCheckpoint;
import dev.griffin.serve.weights.Checkpoints;

/**
 * A dense model with its tokenizer, loaded from a {@code .gguf} file or a Hugging Face
 * directory, from which GRIFFIN variants are derived on demand (sharing the dense
 * weights).
 */
public final class LoadedModel implements AutoCloseable {

	private static final Logger logger = LoggerFactory.getLogger(LoadedModel.class);

	private final Path path;

	private final NDManager manager;

	private final CausalLm dense;

	private final Tokenizer tokenizer;

	private final KernelCalibration.Result kernels;

	private final NeuronPrior prior;

	private LoadedModel(Path path, NDManager manager, CausalLm dense, Tokenizer tokenizer,
			KernelCalibration.Result kernels, NeuronPrior prior) {
		this.kernels = kernels;
		this.prior = prior;
		this.path = path;
		this.manager = manager;
		this.dense = dense;
		this.tokenizer = tokenizer;
	}

	/**
	 * Loads a model with the neuron prior beside it, if there is one.
	 * @param progress told the number of layers loaded so far
	 */
	public static LoadedModel load(Path path, ModelOptions options, IntConsumer progress) {
		return load(path, null, options, progress);
	}

	/**
	 * @param prior where the neuron prior is ({@link NeuronPrior#locate}: null for beside
	 * the model if there, "none" for no prior, or a file that must exist)
	 * @param progress told the number of layers loaded so far
	 */
	public static LoadedModel load(Path path, String prior, ModelOptions options, IntConsumer progress) {
		Path priorFile;
		try {
			priorFile = NeuronPrior.locate(prior, path);
		}
		catch (IllegalArgumentException ex) {
			throw new CheckpointException(ex.getMessage());
		}
		NativeAllocator.tune();
		NDManager manager = NDManager.newBaseManager(options.djlDevice());
		try (Checkpoint checkpoint = Checkpoints.open(path)) {
			if (options.dtype() == ModelOptions.Precision.FLOAT16
					&& !checkpoint.config().architecture().fitsHalfPrecision()) {
				throw new CheckpointException(("%s: %s's residual stream outgrows float16 (past 65504 within its first"
						+ " layers, as in transformers' own float16 run), so its logits become infinite; load it in"
						+ " float32")
					.formatted(path, checkpoint.config().architecture().modelType()));
			}
			ResidentMemory.Sample before = ResidentMemory.sample();
			boolean pack = options.packsAtLoad();
			if (options.packsWeights() && !pack) {
				logger.info("no oneDNN-packed copies of the weights: the native forms run here, and no form named reads"
						+ " copies (README, Kernels)");
			}
			CausalLm built = ModelBuilder.build(checkpoint, options.withPackWeights(pack), manager, progress);
			KernelCalibration.Result kernels = KernelCalibration.choose(built, options.decodeKernel(),
					options.prefillKernel());
			if (built.kernels().packed().size() > 0 && !kernels.kernels().readsPacked(options.dtype().dataType())) {
				long bytes = built.kernels().packed().bytes();
				built = built.withoutPackedWeights();
				logger.info("packed weights freed ({} MiB): the {} plan (decode {}, prefill {}) reads none; {}",
						bytes >> 20, options.dtype().name().toLowerCase(Locale.ROOT),
						kernels.kernels().decode().name().toLowerCase(Locale.ROOT),
						kernels.kernels().prefill().name().toLowerCase(Locale.ROOT), NativeAllocator.giveBack());
			}
			CausalLm dense = built.withKernels(kernels.kernels());
			Tokenizer tokenizer = (checkpoint instanceof GgufCheckpoint gguf) ? Tokenizer.fromGguf(gguf.file())
					: Tokenizer.fromHuggingFace(path);
			if (tokenizer.vocabularySize() > dense.config().vocabularySize()) {
				throw new CheckpointException("%s: the tokenizer has %d tokens but the model only %d".formatted(path,
						tokenizer.vocabularySize(), dense.config().vocabularySize()));
			}
			logger.info("generation ends on {}", endTokens(dense.config().eosTokenIds(), tokenizer));
			logger.info("loaded with its kernels chosen: {}", ResidentMemory.since(before));
			// Loading leaves the blocks it read and dequantised as garbage; collecting
			// it now keeps a concurrent collection from competing with the engine's
			// threads during the first requests.
			System.gc();
			return new LoadedModel(path, manager, dense, tokenizer, kernels, readPrior(priorFile, dense));
		}
		catch (RuntimeException ex) {
			manager.close();
			throw ex;
		}
	}

	/** The end tokens as the log shows them: each id with its text. */
	static String endTokens(int[] ids, Tokenizer tokenizer) {
		if (ids.length == 0) {
			return "no token (the checkpoint names none; generation stops at its length limit or a stop string)";
		}
		StringBuilder text = new StringBuilder();
		for (int id : ids) {
			if (text.length() > 0) {
				text.append(", ");
			}
			text.append(id);
			if (id >= 0 && id < tokenizer.vocabularySize()) {
				text.append(' ').append(tokenizer.decode(new int[] { id }, false));
			}
		}
		return text.toString();
	}

	/**
	 * The neuron prior in {@code file}, or null for none; one that cannot be used fails
	 * the load.
	 */
	private static NeuronPrior readPrior(Path file, CausalLm dense) {
		if (file == null) {
			logger.info(
					"no neuron prior: the glass and layerwise methods are unavailable (the prior command measures one)");
			return null;
		}
		try {
			NeuronPrior prior = NeuronPrior.read(file);
			prior.check(dense.config().numberOfLayers(), dense.config().intermediateSize());
			logger.info("neuron prior: {} (tau {} tokens, measured on {} generated tokens)", file, prior.tau(),
					prior.tokens());
			if (prior.sensitivity() == null) {
				logger.warn("the neuron prior at {} has no layer sensitivities: the layerwise method is unavailable "
						+ "until the prior command measures it again", file);
			}
			else {
				logger.info("layerwise densities at mean 0.5: {}", prior.schedule(0.5));
			}
			return prior;
		}
		catch (IOException | IllegalArgumentException ex) {
			throw new CheckpointException("%s: %s".formatted(file, ex.getMessage()));
		}
	}

	public Path path() {
		return this.path;
	}

	/** The model's neuron prior, or null when none was measured. */
	public NeuronPrior prior() {
		return this.prior;
	}

	/**
	 * Whether this model can run {@code method}: {@code glass} needs a neuron prior,
	 * {@code layerwise} one with layer sensitivities.
	 */
	public boolean supports(SelectionMethod method) {
		if (!method.usesPrior()) {
			return true;
		}
		return this.prior != null && (!method.spreadsDensity() || this.prior.sensitivity() != null);
	}

	public CausalLm dense() {
		return this.dense;
	}

	public Tokenizer tokenizer() {
		return this.tokenizer;
	}

	/** The kernels the model runs with, and what calibration measured to choose them. */
	public KernelCalibration.Result kernels() {
		return this.kernels;
	}

	/**
	 * The dense model for density 1 (every method keeps every neuron there), otherwise a
	 * GRIFFIN model over the same weights.
	 */
	public CausalLm variant(double density, SelectionMethod method) {
		if (density == 1.0) {
			return this.dense;
		}
		return GriffinTransform.apply(this.dense, schedule(density, method), method, this.prior);
	}

	/**
	 * Each layer's density when a request asks for {@code density} with {@code method}.
	 */
	public DensitySchedule schedule(double density, SelectionMethod method) {
		return GriffinTransform.schedule(density, method, this.prior, this.dense.config().numberOfLayers());
	}

	@Override
	public void close() {
		this.tokenizer.close();
		this.manager.close();
	}

}

package dev.griffin.serve.cli;

import java.nio.file.Path;

import picocli.CommandLine.Option;

import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.weights.Checkpoints;

/** Options shared by every command that loads a model. */
public class ModelOptionsMixin {

	@Option(names = "--model", paramLabel = "PATH",
			description = "A .gguf file or a Hugging Face model directory (default: the model scripts/fetch-model caches).")
	Path model;

	@Option(names = "--dtype", defaultValue = "float32",
			description = "float32 or float16 (default: ${DEFAULT-VALUE}).")
	String dtype;

	@Option(names = "--device", defaultValue = "cpu", description = "cpu or gpu[:N] (default: ${DEFAULT-VALUE}).")
	String device;

	@Option(names = "--threads", description = "Compute threads for the engine (default: the engine's choice).")
	Integer threads;

	@Option(names = "--decode-kernel", defaultValue = "auto",
			description = "auto (fastest measured at load), pool, single, split, onednn (float32 weights), layer or "
					+ "native (the project's own products; CPUs with AVX2) (default: ${DEFAULT-VALUE}).")
	String decodeKernel;

	@Option(names = "--prefill-kernel", defaultValue = "auto",
			description = "auto (fastest measured at load), weights, float32, onednn (float32 weights), native "
					+ "(the project's own products; CPUs with AVX2) or bfloat16 "
					+ "(faster on CPUs with AVX512-BF16, rounds prompt products to bfloat16; never chosen by auto) "
					+ "(default: ${DEFAULT-VALUE}).")
	String prefillKernel;

	@Option(names = "--pack-weights", defaultValue = "true", negatable = true, fallbackValue = "true",
			description = "Give weights on the CPU oneDNN-packed copies where a form that reads them can be chosen "
					+ "(the native kernels cannot run here, or --decode-kernel or --prefill-kernel names one: onednn; "
					+ "float32: any decode form but native; float16: layer), as much memory again for the packed "
					+ "matrices (default: ${DEFAULT-VALUE}; --no-pack-weights to turn off).")
	boolean packWeights;

	@Option(names = "--kv-cache-dtype", defaultValue = "auto",
			description = "The KV cache's precision on the CPU: auto (the weights'), float32 or float16 (half the "
					+ "memory; attention's arithmetic stays float32) (default: ${DEFAULT-VALUE}).")
	String kvCacheDtype;

	@Option(names = "--prior", paramLabel = "FILE|none",
			description = "The neuron prior of the glass and layerwise methods: a file the prior command wrote, or none (default: "
					+ "the file beside the model, when there is one).")
	String prior;

	Path modelPath() {
		return (this.model != null) ? this.model : Checkpoints.defaultModelPath();
	}

	ModelOptions options() {
		return ModelOptions.of(this.dtype, this.device, this.decodeKernel, this.prefillKernel)
			.withPackWeights(this.packWeights)
			.withKvCache(ModelOptions.kvCache(this.kvCacheDtype));
	}

	/** Loads the model these options name, with its neuron prior. */
	LoadedModel load(java.util.function.IntConsumer progress) {
		return LoadedModel.load(modelPath(), this.prior, options(), progress);
	}

	void configureEngine() {
		System.setProperty("ai.djl.offline", System.getProperty("ai.djl.offline", "true"));
		if (this.threads != null) {
			System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(this.threads));
			System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
		}
	}

	static SelectionMethod method(String name) {
		return SelectionMethod.parse(name);
	}

}

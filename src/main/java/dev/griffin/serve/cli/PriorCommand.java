package dev.griffin.serve.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import dev.griffin.serve.analysis.PriorCalibration;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.griffin.NeuronPrior;

/**
 * Measures a model's neuron prior for the {@code glass} and {@code layerwise} methods and
 * keeps it beside the model.
 */
@Command(name = "prior", mixinStandardHelpOptions = true,
		description = "Measures the model's neuron prior for the glass and layerwise selection methods: the model "
				+ "replies to the engine's instructions through its chat template, each neuron's mean share of the "
				+ "replies' activations is recorded per layer, and the prior's weight tau is chosen as the one whose "
				+ "selections from a prompt hold the most of its own reply's activations. It also measures each "
				+ "layer's sensitivity, how far the replies move when that layer alone runs GRIFFIN at a few "
				+ "densities, from which layerwise spreads a mean density over the layers. The prior is written beside the model, where "
				+ "loading finds it.")
public class PriorCommand implements Callable<Integer> {

	@Mixin
	ModelOptionsMixin model;

	@Option(names = "--max-tokens", defaultValue = "64", description = "The longest reply (default: ${DEFAULT-VALUE}).")
	int maxTokens;

	@Option(names = "--density", defaultValue = "0.5",
			description = "The density at which tau is measured (default: ${DEFAULT-VALUE}).")
	double density;

	@Option(names = "--sensitivity-instructions", defaultValue = "16",
			description = "On how many of the instructions each layer's sensitivity (for layerwise) is measured: "
					+ "every layer at every measured density reads each of them once (default: ${DEFAULT-VALUE}).")
	int sensitivityInstructions;

	@Option(names = "--output", paramLabel = "FILE",
			description = "Where to write the prior (default: beside the model, where loading looks for it).")
	Path output;

	@Override
	public Integer call() throws IOException {
		if (!(this.density > 0 && this.density < 1)) {
			throw new CommandLine.ParameterException(new CommandLine(this), "--density must be in (0, 1)");
		}
		if (this.sensitivityInstructions < 1) {
			throw new CommandLine.ParameterException(new CommandLine(this),
					"--sensitivity-instructions must be at least 1");
		}
		if (this.maxTokens < 1) {
			throw new CommandLine.ParameterException(new CommandLine(this), "--max-tokens must be at least 1");
		}
		this.model.configureEngine();
		List<String> instructions = PriorCalibration.instructions();
		PriorCalibration.Result result;
		Path path;
		try (LoadedModel loaded = Progress.load(this.model, System.err)) {
			System.err.println();
			path = (this.output != null) ? this.output : NeuronPrior.pathFor(loaded.path());
			result = PriorCalibration.measure(loaded, instructions, this.maxTokens, this.density,
					this.sensitivityInstructions, System.err);
		}
		System.out.printf("%d instructions (prompts of %.1f tokens on average), %d reply tokens%n",
				result.instructions(), result.promptTokens(), result.prior().tokens());
		System.out.printf("share of a reply's activations its prompt's %.0f%% of the neurons hold, by tau:%n",
				100 * this.density);
		for (int t = 0; t < result.taus().length; t++) {
			System.out.printf("  tau %7.0f  %.4f%s%n", result.taus()[t], result.shares()[t],
					(result.taus()[t] == result.prior().tau()) ? "  <- chosen" : (t == 0) ? "  (GRIFFIN's topk)" : "");
		}
		NeuronPrior.LayerSensitivity sensitivity = result.prior().sensitivity();
		System.out.printf("KL(full || this layer alone at a density), nats per reply token, by layer:%n  layer");
		for (double d : sensitivity.densities()) {
			System.out.printf("  %8s", d);
		}
		System.out.printf("   layerwise at %s%n", this.density);
		double[] spread = result.prior().schedule(this.density).densities();
		for (int layer = 0; layer < spread.length; layer++) {
			System.out.printf("  %5d", layer);
			for (double kl : sensitivity.kl()[layer]) {
				System.out.printf("  %8.5f", kl);
			}
			System.out.printf("   %.3f%n", spread[layer]);
		}
		result.prior().write(path);
		System.out.println("wrote " + path);
		return 0;
	}

}

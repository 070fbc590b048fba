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
 * Measures a model's neuron prior for the {@code glass} method and keeps it beside the
 * model.
 */
@Command(name = "prior", mixinStandardHelpOptions = true,
		description = "Measures the model's neuron prior for the glass selection method: the model replies to the "
				+ "engine's instructions through its chat template, each neuron's mean share of the replies' "
				+ "activations is recorded per layer, and the prior's weight tau is chosen as the one whose "
				+ "selections from a prompt hold the most of its own reply's activations. The prior is written beside "
				+ "the model, where loading finds it.")
public class PriorCommand implements Callable<Integer> {

	@Mixin
	ModelOptionsMixin model;

	@Option(names = "--max-tokens", defaultValue = "64", description = "The longest reply (default: ${DEFAULT-VALUE}).")
	int maxTokens;

	@Option(names = "--density", defaultValue = "0.5",
			description = "The density at which tau is measured (default: ${DEFAULT-VALUE}).")
	double density;

	@Option(names = "--output", paramLabel = "FILE",
			description = "Where to write the prior (default: beside the model, where loading looks for it).")
	Path output;

	@Override
	public Integer call() throws IOException {
		if (!(this.density > 0 && this.density < 1)) {
			throw new CommandLine.ParameterException(new CommandLine(this), "--density must be in (0, 1)");
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
			result = PriorCalibration.measure(loaded, instructions, this.maxTokens, this.density, System.err);
		}
		System.out.printf("%d instructions (prompts of %.1f tokens on average), %d reply tokens%n",
				result.instructions(), result.promptTokens(), result.prior().tokens());
		System.out.printf("share of a reply's activations its prompt's %.0f%% of the neurons hold, by tau:%n",
				100 * this.density);
		for (int t = 0; t < result.taus().length; t++) {
			System.out.printf("  tau %7.0f  %.4f%s%n", result.taus()[t], result.shares()[t],
					(result.taus()[t] == result.prior().tau()) ? "  <- chosen" : (t == 0) ? "  (GRIFFIN's topk)" : "");
		}
		result.prior().write(path);
		System.out.println("wrote " + path);
		return 0;
	}

}

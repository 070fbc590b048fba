package dev.griffin.serve.analysis;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.griffin.NeuronPrior;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.tokenizer.ChatTemplate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/**
 * The neuron prior of the default model, measured on a few of the shipped instructions,
 * then loaded with the model for the glass and layerwise methods.
 */
class PriorCalibrationIT {

	@TempDir
	Path directory;

	@Test
	void thePriorIsEachNeuronsShareOfTheRepliesWithTheLayersSensitivitiesAndGlassAndLayerwiseGenerateWithIt()
			throws Exception {
		List<String> instructions = PriorCalibration.instructions();
		assertThat(instructions).hasSizeGreaterThanOrEqualTo(40).noneMatch((line) -> line.startsWith("#"));
		PrintStream progress = new PrintStream(new ByteArrayOutputStream());
		Path file = this.directory.resolve("prior.json");
		PriorCalibration.Result result;
		try (LoadedModel model = LoadedModel.load(Fixtures.defaultModel(), "none", ModelOptions.CPU_FLOAT32,
				(layers) -> {
				})) {
			assertThat(model.supports(SelectionMethod.GLASS)).isFalse();
			result = PriorCalibration.measure(model, instructions.subList(0, 4), 8, 0.5, 2, progress);
		}
		NeuronPrior prior = result.prior();
		assertThat(result.instructions()).isEqualTo(4);
		assertThat(prior.tokens()).as("replies of at most 8 tokens, the last one sampled only").isBetween(1, 28);
		// every token's Zbar^2 sums to 1 over the neurons, so each layer's mean share
		// does
		for (double[] layer : prior.layers()) {
			assertThat(layer).hasSize(1536);
			assertThat(java.util.Arrays.stream(layer).sum()).isCloseTo(1.0, within(1e-4));
		}
		assertThat(result.taus()).contains(prior.tau());
		for (double share : result.shares()) {
			assertThat(share).isBetween(0.0, 1.0);
			assertThat(share).isLessThanOrEqualTo(result.shares()[indexOf(result.taus(), prior.tau())]);
		}
		// each layer alone at 0.25, 0.5 and 0.75 of its neurons: the fewer, the further
		// the replies move, summed over the layers
		NeuronPrior.LayerSensitivity sensitivity = prior.sensitivity();
		assertThat(sensitivity.densities()).containsExactly(0.25, 0.5, 0.75);
		assertThat(sensitivity.kl()).hasNumberOfRows(30);
		double[] summed = new double[3];
		for (double[] layer : sensitivity.kl()) {
			for (int d = 0; d < 3; d++) {
				assertThat(layer[d]).isNotNegative();
				summed[d] += layer[d];
			}
		}
		assertThat(summed[0]).isGreaterThan(summed[1]);
		assertThat(summed[1]).isGreaterThan(summed[2]);
		assertThat(summed[2]).isPositive();
		prior.write(file);

		try (LoadedModel model = LoadedModel.load(Fixtures.defaultModel(), file.toString(), ModelOptions.CPU_FLOAT32,
				(layers) -> {
				})) {
			assertThat(model.supports(SelectionMethod.GLASS)).isTrue();
			assertThat(model.prior().tau()).isEqualTo(prior.tau());
			int[] question = model.tokenizer()
				.encodeChat(List.of(new ChatTemplate.Message("user", "What is the capital of France?")), true, false);
			Generator.Result glass = new Generator(model.variant(0.5, SelectionMethod.GLASS), model.tokenizer())
				.generate(question, SamplingParams.greedy(8), (token, text) -> true);
			assertThat(glass.tokens()).isNotEmpty();
			// with tau 0 the prior has no weight: the same tokens as topk
			Generator.Result topk = new Generator(model.variant(0.5, SelectionMethod.TOPK), model.tokenizer())
				.generate(question, SamplingParams.greedy(8), (token, text) -> true);
			Generator.Result tauZero = new Generator(dev.griffin.serve.griffin.GriffinTransform.apply(model.dense(),
					dev.griffin.serve.griffin.DensitySchedule.uniform(0.5, model.dense().config().numberOfLayers()),
					SelectionMethod.GLASS, model.prior().withTau(0)), model.tokenizer())
				.generate(question, SamplingParams.greedy(8), (token, text) -> true);
			assertThat(tauZero.tokens()).containsExactly(topk.tokens());
			// layerwise: the mean density spread over the layers
			assertThat(model.supports(SelectionMethod.LAYERWISE)).isTrue();
			double[] spread = model.schedule(0.5, SelectionMethod.LAYERWISE).densities();
			assertThat(java.util.Arrays.stream(spread).average().orElseThrow()).isCloseTo(0.5, within(1e-9));
			assertThat(java.util.Arrays.stream(spread).distinct().count()).as("spread by the measured sensitivities")
				.isGreaterThan(1);
			Generator.Result layerwise = new Generator(model.variant(0.5, SelectionMethod.LAYERWISE), model.tokenizer())
				.generate(question, SamplingParams.greedy(8), (token, text) -> true);
			assertThat(layerwise.tokens()).isNotEmpty();
			assertThatThrownBy(() -> model.schedule(0.2, SelectionMethod.LAYERWISE))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("from 0.25 to 1");
		}
	}

	private static int indexOf(double[] values, double value) {
		for (int i = 0; i < values.length; i++) {
			if (values[i] == value) {
				return i;
			}
		}
		throw new AssertionError(value + " is not among " + java.util.Arrays.toString(values));
	}

}

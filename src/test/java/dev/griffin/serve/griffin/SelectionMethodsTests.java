package dev.griffin.serve.griffin;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.IntFunction;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/**
 * The selection methods beside {@code topk}: {@code wina} weighs the prompt statistic by
 * the down projection's column norms, {@code glass} adds the model's neuron prior with
 * weight tau, and the prior file they read.
 */
class SelectionMethodsTests {

	private static NDManager manager;

	private static CausalLm dense;

	private static int[] prompt;

	@TempDir
	Path directory;

	@BeforeAll
	static void load() {
		manager = NDManager.newBaseManager();
		dense = Fixtures.tinyModel("tiny-llama", ModelOptions.CPU_FLOAT32, manager);
		prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
	}

	@AfterAll
	static void close() {
		manager.close();
	}

	@Test
	void winaWeighsTheStatisticByTheSquaredNormOfEachNeuronsDownColumn() {
		FeedForward.Weights weights = dense.layers().get(1).feedForward().weights();
		int f = weights.intermediateSize();
		int d = dense.config().hiddenSize();
		float[] down = weights.down().toType(DataType.FLOAT32, false).toFloatArray(); // [D,
																						// F]
		double[] sumOfSquares = new SplittableRandom(3).doubles(f, 0, 5).toArray();
		double[] scores = new GriffinFeedForward(weights, f / 2, SelectionMethod.WINA, manager).scores(sumOfSquares);
		for (int j = 0; j < f; j++) {
			double norm = 0;
			for (int row = 0; row < d; row++) {
				norm += (double) down[row * f + j] * down[row * f + j];
			}
			assertThat(scores[j]).as("neuron %d", j).isCloseTo(sumOfSquares[j] * norm, within(1e-9 * norm * 5));
		}
		assertThat(new GriffinFeedForward(weights, f / 2, SelectionMethod.TOPK, manager).scores(sumOfSquares))
			.as("topk ranks s^2 itself")
			.containsExactly(sumOfSquares);
	}

	@Test
	void glassIsTopkWithTauZeroAndThePriorsTopKWithAnOverwhelmingTau() {
		int layers = dense.config().numberOfLayers();
		int f = dense.config().intermediateSize();
		NeuronPrior prior = prior(layers, f, (layer) -> new SplittableRandom(layer).doubles(f, 0, 1).toArray());
		DensitySchedule half = DensitySchedule.uniform(0.5, layers);
		int[][] topk = experts(GriffinTransform.apply(dense, half, SelectionMethod.TOPK));
		assertThat(experts(GriffinTransform.apply(dense, half, SelectionMethod.GLASS, prior.withTau(0))))
			.isDeepEqualTo(topk);
		// the prompt's s^2 sums to its token count, far below tau * (gaps of g)
		int[][] priorOnly = experts(GriffinTransform.apply(dense, half, SelectionMethod.GLASS, prior.withTau(1e12)));
		for (int layer = 0; layer < layers; layer++) {
			int[] expected = ExpertSelector.top(prior.layers()[layer], f / 2);
			Arrays.sort(expected);
			assertThat(priorOnly[layer]).as("layer %d", layer).containsExactly(expected);
		}
		assertThat(priorOnly).isNotEqualTo(topk);
	}

	@Test
	void glassNeedsAPriorOfTheModelsShape() {
		int layers = dense.config().numberOfLayers();
		int f = dense.config().intermediateSize();
		DensitySchedule half = DensitySchedule.uniform(0.5, layers);
		assertThatThrownBy(() -> GriffinTransform.apply(dense, half, SelectionMethod.GLASS))
			.isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("prior command");
		NeuronPrior narrow = prior(layers, f - 1, (layer) -> new double[f - 1]);
		assertThatThrownBy(() -> GriffinTransform.apply(dense, half, SelectionMethod.GLASS, narrow))
			.isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("measure it again");
		NeuronPrior fit = prior(layers, f, (layer) -> new double[f]);
		assertThatThrownBy(() -> new GriffinFeedForward(dense.layers().get(0).feedForward().weights(), 4,
				SelectionMethod.TOPK, manager, fit, 0))
			.isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("takes no neuron prior");
	}

	@Test
	void aPriorFileRoundTripsAndIsFoundBesideItsModel() throws IOException {
		NeuronPrior prior = prior(2, 3, (layer) -> new double[] { 0.5, 0.25 + layer * 0.125, 0.25 - layer * 0.125 });
		Path model = Files.writeString(this.directory.resolve("model.gguf"), "weights");
		assertThat(NeuronPrior.locate(null, model)).as("none written yet").isNull();
		Path beside = NeuronPrior.pathFor(model);
		assertThat(beside.getFileName().toString()).isEqualTo("model.gguf.griffin-prior.json");
		prior.write(beside);
		assertThat(NeuronPrior.locate("", model)).isEqualTo(beside);
		assertThat(NeuronPrior.locate("none", model)).as("turned off").isNull();
		assertThat(NeuronPrior.locate(beside.toString(), this.directory)).isEqualTo(beside);
		assertThatThrownBy(() -> NeuronPrior.locate(this.directory.resolve("missing.json").toString(), model))
			.isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("missing.json");
		NeuronPrior read = NeuronPrior.read(beside);
		assertThat(read.tau()).isEqualTo(prior.tau());
		assertThat(read.tokens()).isEqualTo(prior.tokens());
		assertThat(read.layers()).isDeepEqualTo(prior.layers());
		assertThat(NeuronPrior.pathFor(this.directory)).isEqualTo(this.directory.resolve("griffin-prior.json"));
	}

	@Test
	void aFileThatIsNotAPriorIsRefusedWithItsName() throws IOException {
		Path other = Files.writeString(this.directory.resolve("other.json"), "{\"format\": \"something-else\"}");
		assertThatThrownBy(() -> NeuronPrior.read(other)).isInstanceOf(IOException.class)
			.hasMessageContaining("other.json")
			.hasMessageContaining(NeuronPrior.FORMAT);
		Path negative = Files.writeString(this.directory.resolve("negative.json"),
				"{\"format\": \"%s\", \"tau\": 4, \"tokens\": 10, \"layers\": [[0.5, -0.5]]}"
					.formatted(NeuronPrior.FORMAT));
		assertThatThrownBy(() -> NeuronPrior.read(negative)).isInstanceOf(IOException.class)
			.hasMessageContaining(">= 0");
		Path text = Files.writeString(this.directory.resolve("text.json"),
				"{\"format\": \"%s\", \"tau\": 4, \"tokens\": 10, \"layers\": [[\"a\"]]}"
					.formatted(NeuronPrior.FORMAT));
		assertThatThrownBy(() -> NeuronPrior.read(text)).isInstanceOf(IOException.class)
			.hasMessageContaining("not a number");
		assertThatThrownBy(() -> new NeuronPrior(Double.NaN, 1, new double[][] { { 1 } }))
			.isInstanceOf(IllegalArgumentException.class);
	}

	/**
	 * OPT's non-gated block: every method selects k neurons and decodes; the static
	 * baseline ranks by ||fc1 row|| alone (a gated block's gate x up norms have no
	 * counterpart), and wina by fc2's column norms.
	 */
	@Test
	void everyMethodRunsOnANonGatedBlock() {
		try (NDManager opt = NDManager.newBaseManager()) {
			CausalLm model = Fixtures.tinyModel("tiny-opt", ModelOptions.CPU_FLOAT32, opt);
			int layers = model.config().numberOfLayers();
			int f = model.config().intermediateSize();
			int[] optPrompt = Fixtures.ints(Fixtures.json("tiny-opt/reference.json").get("prompt"));
			NeuronPrior prior = prior(layers, f, (layer) -> new SplittableRandom(layer).doubles(f, 0, 1).toArray());
			for (SelectionMethod method : SelectionMethod.values()) {
				// layerwise's spread needs measured sensitivities; its selection is
				// topk's
				DensitySchedule schedule = DensitySchedule.uniform(0.5, layers);
				CausalLm griffin = GriffinTransform.apply(model, schedule, method, method.usesPrior() ? prior : null);
				try (InferenceSession session = new InferenceSession(griffin, 64)) {
					float[] logits = session.prefill(optPrompt, optPrompt.length);
					// enough tokens for delayed to select after its first ones
					for (int step = 0; step <= GriffinFeedForward.DELAY_TOKENS; step++) {
						int token = new int[] { 5, 77, 200 }[step % 3];
						for (float logit : logits) {
							assertThat(Float.isFinite(logit)).as(method.wireName()).isTrue();
						}
						logits = session.decode(token);
					}
					for (int layer = 0; layer < layers; layer++) {
						assertThat(((GriffinState) session.state(layer)).experts().indices())
							.as("%s, layer %d", method.wireName(), layer)
							.hasSize(schedule.experts(layer, f));
					}
				}
			}
			FeedForward.Weights weights = model.layers().get(0).feedForward().weights();
			assertThat(weights.gated()).isFalse();
			float[] up = weights.gateUp().toFloatArray(); // [F, D]
			int d = model.config().hiddenSize();
			double[] norms = new double[f];
			for (int j = 0; j < f; j++) {
				for (int i = 0; i < d; i++) {
					norms[j] += (double) up[j * d + i] * up[j * d + i];
				}
			}
			int[] expected = ExpertSelector.top(norms, f / 2);
			Arrays.sort(expected);
			CausalLm magnitude = GriffinTransform.apply(model, DensitySchedule.uniform(0.5, layers),
					SelectionMethod.MAGNITUDE);
			try (InferenceSession session = new InferenceSession(magnitude, 64)) {
				session.prefill(optPrompt, optPrompt.length);
				session.finishPrompt();
				assertThat(((GriffinState) session.state(0)).experts().indices()).containsExactly(expected);
			}
		}
	}

	private static NeuronPrior prior(int layers, int f, IntFunction<double[]> layer) {
		double[][] values = new double[layers][];
		for (int i = 0; i < layers; i++) {
			values[i] = layer.apply(i);
		}
		return new NeuronPrior(16, 100, values);
	}

	/** Each layer's experts after the tiny model's prompt. */
	private static int[][] experts(CausalLm griffin) {
		int layers = griffin.config().numberOfLayers();
		int[][] experts = new int[layers][];
		try (InferenceSession session = new InferenceSession(griffin, 64)) {
			session.prefill(prompt, prompt.length);
			session.finishPrompt();
			for (int layer = 0; layer < layers; layer++) {
				experts[layer] = ((GriffinState) session.state(layer)).experts().indices();
			}
		}
		return experts;
	}

}

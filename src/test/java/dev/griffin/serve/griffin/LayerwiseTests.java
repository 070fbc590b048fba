package dev.griffin.serve.griffin;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/**
 * The {@code layerwise} method: a mean density spread over the layers by their measured
 * sensitivities, which the prior file carries.
 */
class LayerwiseTests {

	private static final double[] MEASURED = { 0.25, 0.5, 0.75 };

	private static NDManager manager;

	private static CausalLm dense;

	@TempDir
	Path directory;

	@BeforeAll
	static void load() {
		manager = NDManager.newBaseManager();
		dense = Fixtures.tinyModel("tiny-llama", ModelOptions.CPU_FLOAT32, manager);
	}

	@AfterAll
	static void close() {
		manager.close();
	}

	@Test
	void theSpreadKeepsTheMeanDensityAtEveryDensity() {
		NeuronPrior prior = prior(new double[][] { { 0.9, 0.3, 0.1 }, { 0.2, 0.1, 0.05 }, { 0.4, 0.2, 0.02 },
				{ 0.05, 0.02, 0.01 }, { 3.0, 1.0, 0.2 } });
		for (double density : new double[] { 0.25, 0.3, 0.37, 0.5, 0.61, 0.75, 0.9, 1.0 }) {
			double[] spread = prior.schedule(density).densities();
			assertThat(Arrays.stream(spread).average().orElseThrow()).as("mean at %s", density)
				.isCloseTo(density, within(1e-9));
			for (double d : spread) {
				assertThat(d).isBetween(0.25, 1.0);
			}
		}
		assertThat(prior.schedule(1.0).densities()).containsOnly(1.0);
		assertThat(prior.schedule(0.25).densities()).containsOnly(0.25);
	}

	@Test
	void theLayersThatMoveTheRepliesMostGetMoreNeurons() {
		// layer 1 costs ten times what layer 0 and 2 do at every density
		double[] spread = prior(new double[][] { { 0.1, 0.04, 0.01 }, { 1.0, 0.4, 0.1 }, { 0.1, 0.04, 0.01 } })
			.schedule(0.5)
			.densities();
		assertThat(spread[1]).isGreaterThan(spread[0]);
		assertThat(spread[0]).isEqualTo(spread[2]);
		// equal costs: the same density everywhere
		assertThat(prior(new double[][] { { 0.3, 0.1, 0.02 }, { 0.3, 0.1, 0.02 } }).schedule(0.5).densities())
			.containsExactly(0.5, 0.5);
	}

	@Test
	void theSpreadIsTheLeastSummedCostOnTheMeasuredGrid() {
		double[][] kl = { { 0.8, 0.3, 0.1 }, { 0.2, 0.15, 0.02 }, { 1.5, 0.2, 0.05 } };
		NeuronPrior prior = prior(kl);
		double[] spread = prior.schedule(0.5).densities();
		// every way of putting three layers on the grid 0.25..1 at mean 0.5
		double[] grid = { 0.25, 0.5, 0.75, 1.0 };
		double best = Double.POSITIVE_INFINITY;
		for (double a : grid) {
			for (double b : grid) {
				for (double c : grid) {
					if (Math.abs(a + b + c - 1.5) < 1e-9) {
						best = Math.min(best, cost(kl[0], a) + cost(kl[1], b) + cost(kl[2], c));
					}
				}
			}
		}
		double spreadCost = 0;
		for (int layer = 0; layer < 3; layer++) {
			spreadCost += NeuronPrior.LayerSensitivity.at(prior.sensitivity().hull(layer), spread[layer]);
		}
		assertThat(spreadCost).isLessThanOrEqualTo(best + 1e-12);
	}

	@Test
	void aDipInAMeasuredCurveDoesNotStopTheSpread() {
		// layer 0's middle point lies above the chord (noise): its hull skips it
		NeuronPrior prior = prior(new double[][] { { 1.0, 0.9, 0.0 }, { 0.3, 0.2, 0.1 } });
		assertThat(prior.sensitivity().hull(0)[0]).containsExactly(0.25, 0.75, 1.0);
		double[] spread = prior.schedule(0.5).densities();
		assertThat(spread[0]).as("0.25 -> 0.75 halves the summed cost; the noisy point would stop at 0.5")
			.isEqualTo(0.75);
	}

	@Test
	void aDensityBelowTheMeasuredOnesOrAPriorWithoutSensitivitiesIsRefused() {
		NeuronPrior prior = prior(new double[][] { { 0.3, 0.1, 0.02 } });
		assertThatThrownBy(() -> prior.schedule(0.2)).isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("from 0.25 to 1");
		NeuronPrior old = new NeuronPrior(16, 100, new double[][] { { 0.5, 0.5 } });
		assertThatThrownBy(() -> old.schedule(0.5)).isInstanceOf(IllegalStateException.class)
			.hasMessageContaining("prior command");
		assertThatThrownBy(() -> new NeuronPrior.LayerSensitivity(new double[] { 0.5, 0.25 }, new double[][] {}))
			.isInstanceOf(IllegalArgumentException.class);
		assertThatThrownBy(
				() -> new NeuronPrior.LayerSensitivity(MEASURED, new double[][] { { 0.3, Double.NaN, 0.1 } }))
			.isInstanceOf(IllegalArgumentException.class);
	}

	@Test
	void theSensitivitiesRoundTripThroughTheFileAndAnOlderFileReadsWithout() throws IOException {
		NeuronPrior prior = prior(new double[][] { { 0.3, 0.1, 0.02 }, { 0.6, 0.2, 0.04 } });
		Path file = this.directory.resolve("prior.json");
		prior.write(file);
		NeuronPrior read = NeuronPrior.read(file);
		assertThat(read.sensitivity().densities()).containsExactly(MEASURED);
		assertThat(read.sensitivity().kl()).isDeepEqualTo(prior.sensitivity().kl());
		assertThat(read.schedule(0.5)).isEqualTo(prior.schedule(0.5));
		Path older = Files.writeString(this.directory.resolve("older.json"),
				"{\"format\": \"%s\", \"tau\": 4, \"tokens\": 10, \"layers\": [[0.5, 0.5]]}"
					.formatted(NeuronPrior.FORMAT));
		assertThat(NeuronPrior.read(older).sensitivity()).isNull();
		Path broken = Files.writeString(this.directory.resolve("broken.json"),
				"{\"format\": \"%s\", \"tau\": 4, \"tokens\": 10, \"layers\": [[0.5, 0.5]], \"sensitivity\": {\"densities\": [0.5], \"kl\": [[\"x\"]]}}"
					.formatted(NeuronPrior.FORMAT));
		assertThatThrownBy(() -> NeuronPrior.read(broken)).isInstanceOf(IOException.class)
			.hasMessageContaining("not a number");
	}

	@Test
	void theModelRunsEachLayerAtItsOwnDensity() {
		int layers = dense.config().numberOfLayers();
		int f = dense.config().intermediateSize();
		double[][] kl = new double[layers][];
		for (int layer = 0; layer < layers; layer++) {
			kl[layer] = (layer == 0) ? new double[] { 2.0, 1.0, 0.5 } : new double[] { 0.02, 0.01, 0.005 };
		}
		NeuronPrior prior = new NeuronPrior(16, 100, uniformPrior(layers, f),
				new NeuronPrior.LayerSensitivity(MEASURED, kl));
		DensitySchedule schedule = GriffinTransform.schedule(0.5, SelectionMethod.LAYERWISE, prior, layers);
		assertThat(schedule.densities()[0]).isGreaterThan(0.5);
		CausalLm model = GriffinTransform.apply(dense, schedule, SelectionMethod.LAYERWISE, prior);
		for (int layer = 0; layer < layers; layer++) {
			GriffinFeedForward block = (GriffinFeedForward) model.layers().get(layer).feedForward();
			assertThat(block.expertCount()).isEqualTo((int) Math.floor(f * schedule.densities()[layer]));
		}
		assertThat(GriffinTransform.schedule(0.5, SelectionMethod.TOPK, prior, layers))
			.isEqualTo(DensitySchedule.uniform(0.5, layers));
		assertThatThrownBy(() -> GriffinTransform.schedule(0.5, SelectionMethod.LAYERWISE, null, layers))
			.isInstanceOf(IllegalArgumentException.class)
			.hasMessageContaining("prior command");
	}

	@Test
	void aContinuationFedInOnePassGivesTheLogitsOfDecodingItTokenByToken() {
		int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
		int[] continuation = { 17, 99, 3, 250, 42 };
		CausalLm griffin = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, dense.config().numberOfLayers()),
				SelectionMethod.TOPK);
		float[][] stepwise = new float[continuation.length][];
		try (InferenceSession session = new InferenceSession(griffin, prompt.length + continuation.length)) {
			session.prefill(prompt, prompt.length);
			for (int i = 0; i < continuation.length; i++) {
				stepwise[i] = session.decode(continuation[i]);
			}
		}
		try (InferenceSession session = new InferenceSession(griffin, prompt.length + continuation.length)) {
			session.prefill(prompt, prompt.length);
			float[][] together = session.decodeAllLogits(continuation);
			assertThat(together).hasNumberOfRows(continuation.length);
			for (int i = 0; i < continuation.length; i++) {
				for (int v = 0; v < stepwise[i].length; v++) {
					assertThat(together[i][v]).as("token %d, logit %d", i, v).isCloseTo(stepwise[i][v], within(1e-4f));
				}
			}
		}
	}

	private static double cost(double[] kl, double density) {
		for (int i = 0; i < MEASURED.length; i++) {
			if (MEASURED[i] == density) {
				return kl[i];
			}
		}
		return 0.0;
	}

	private static NeuronPrior prior(double[][] kl) {
		return new NeuronPrior(16, 100, uniformPrior(kl.length, 4), new NeuronPrior.LayerSensitivity(MEASURED, kl));
	}

	private static double[][] uniformPrior(int layers, int f) {
		double[][] values = new double[layers][f];
		for (double[] layer : values) {
			Arrays.fill(layer, 1.0 / f);
		}
		return values;
	}

}

package dev.griffin.serve.web;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

import dev.griffin.serve.GriffinServeApplication;
import dev.griffin.serve.griffin.NeuronPrior;

import static dev.griffin.serve.web.ServiceSupport.assertError;
import static dev.griffin.serve.web.ServiceSupport.completion;
import static dev.griffin.serve.web.ServiceSupport.post;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The methods that read the model's neuron prior, served: a prior file of the default
 * model's shape (made up here: what it holds is measured by the prior command, tested in
 * PriorCalibrationIT) lets glass and layerwise run, and layerwise refuses a density its
 * sensitivities do not reach with the request's own 400.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1" })
class PriorServiceIT extends ServiceTestBase {

	@DynamicPropertySource
	static void prior(DynamicPropertyRegistry registry) {
		int layers = 30;
		int f = 1536;
		double[][] g = new double[layers][f];
		double[][] kl = new double[layers][];
		for (int layer = 0; layer < layers; layer++) {
			Arrays.fill(g[layer], 1.0 / f);
			double scale = (layer == 0) ? 20 : 1;
			kl[layer] = new double[] { 0.1 * scale, 0.05 * scale, 0.02 * scale };
		}
		try {
			Path file = Files.createTempFile("griffin-prior", ".json");
			file.toFile().deleteOnExit();
			new NeuronPrior(64, 1000, g, new NeuronPrior.LayerSensitivity(new double[] { 0.25, 0.5, 0.75 }, kl))
				.write(file);
			// the base class turns the prior off; this one wins
			registry.add("griffin.model.prior", file::toString);
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
	}

	@Test
	void glassAndLayerwiseRunAndLayerwiseRefusesADensityBelowItsMeasurements() {
		for (String method : new String[] { "glass", "layerwise" }) {
			Map<String, Object> body = completion("The capital of France is", 4);
			body.put("griffin", Map.of("method", method, "density", 0.5));
			JsonNode response = post(this.client, "/v1/completions", body, 200);
			assertThat(response.at("/griffin/method").asText()).isEqualTo(method);
			assertThat(response.at("/griffin/density").asDouble()).isEqualTo(0.5);
			assertThat(response.at("/usage/completion_tokens").asInt()).isPositive();
		}
		Map<String, Object> low = completion("The capital of France is", 4);
		low.put("griffin", Map.of("method", "layerwise", "density", 0.1));
		JsonNode refused = post(this.client, "/v1/completions", low, 400);
		assertError(refused, "invalid_request_error", "griffin.density");
		assertThat(refused.at("/error/message").asText()).contains("from 0.25 to 1");
	}

}

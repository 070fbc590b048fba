package dev.griffin.serve.model;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.weights.Checkpoint;
import dev.griffin.serve.weights.ModelLoader;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Tiny random Hugging Face checkpoints of every architecture: our float32 logits and
 * greedy tokens against those transformers computed on the same weights
 * (tools/reference/make_fixtures.py).
 */
class TinyModelGoldenTests {

	@ParameterizedTest
	@ValueSource(strings = { "tiny-llama", "tiny-mistral", "tiny-qwen2" })
	void logitsMatchHuggingFace(String name) {
		JsonNode reference = Fixtures.json(name + "/reference.json");
		int[] prompt = Fixtures.ints(reference.get("prompt"));
		try (NDManager manager = NDManager.newBaseManager();
				Checkpoint checkpoint = ModelLoader.open(Fixtures.path(name))) {
			CausalLm model = CausalLm.load(checkpoint, ModelOptions.CPU_FLOAT32, manager, (layers) -> {
			});
			float[][] logits;
			try (InferenceSession session = new InferenceSession(model, 64)) {
				logits = session.prefillAllLogits(prompt);
			}
			double maxDifference = 0;
			JsonNode expected = reference.get("logits");
			for (int t = 0; t < prompt.length; t++) {
				for (int v = 0; v < logits[t].length; v++) {
					maxDifference = Math.max(maxDifference, Math.abs(logits[t][v] - expected.get(t).get(v).asDouble()));
				}
			}
			assertThat(maxDifference).as("max |logit difference| over the whole sequence").isLessThanOrEqualTo(1e-4);
		}
	}

}

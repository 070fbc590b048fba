package dev.griffin.serve.web;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.GriffinServeApplication;

import static dev.griffin.serve.web.ServiceSupport.assertError;
import static dev.griffin.serve.web.ServiceSupport.post;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Gemma 3 270M (scripts/fetch-model gemma3-270m) served: a greedy completion continues
 * the prompt as transformers does ({@code Gemma3Golden270mIT} holds the tokens to the
 * reference), dense and with GRIFFIN; the base model's file has no chat template, so a
 * chat request is the client's 400.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1", "griffin.model.id=gemma-3-270m" })
class Gemma3ServiceIT extends ServiceTestBase {

	private static final String MODEL = "gemma-3-270m";

	@DynamicPropertySource
	static void model(DynamicPropertyRegistry registry) {
		registry.add("griffin.model.path", () -> Fixtures.namedModel("gemma3-270m").toString());
	}

	private static Map<String, Object> completion(String prompt, int maxTokens) {
		return new HashMap<>(Map.of("model", MODEL, "prompt", prompt, "max_tokens", maxTokens, "temperature", 0));
	}

	@Test
	void completesAsTransformersDoes() {
		JsonNode dense = post(this.client, "/v1/completions", completion("The capital of France is", 8), 200);
		// transformers' greedy continuation of the same prompt (fixtures/gemma3-270m)
		assertThat(dense.at("/choices/0/text").asText()).startsWith(" the capital of the country of France");
		assertThat(dense.at("/usage/prompt_tokens").asInt()).as("<bos> and five tokens").isEqualTo(6);
		assertThat(dense.at("/model").asText()).isEqualTo(MODEL);

		Map<String, Object> body = completion("Once upon a time, in a small village by the sea,", 6);
		body.put("griffin", Map.of("method", "topk", "density", 0.5));
		JsonNode griffin = post(this.client, "/v1/completions", body, 200);
		assertThat(griffin.at("/griffin/density").asDouble()).isEqualTo(0.5);
		// GRIFFIN 0.5's reference continuation starts the same way
		assertThat(griffin.at("/choices/0/text").asText()).startsWith(" there lived");
	}

	@Test
	void aChatRequestIsRefusedForTheBaseModel() {
		Map<String, Object> chat = new HashMap<>(Map.of("model", MODEL, "messages",
				List.of(Map.of("role", "user", "content", "Hello")), "max_tokens", 4));
		JsonNode refused = post(this.client, "/v1/chat/completions", chat, 400);
		assertError(refused, "invalid_request_error", "messages");
		assertThat(refused.at("/error/message").asText()).contains("no chat template");
	}

}

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
import static dev.griffin.serve.web.ServiceSupport.events;
import static dev.griffin.serve.web.ServiceSupport.json;
import static dev.griffin.serve.web.ServiceSupport.post;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Qwen2.5-Coder-0.5B-Instruct (scripts/fetch-model qwen2.5-coder-0.5b) served: a
 * completion with a suffix fills in the middle, whole and streamed.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1", "griffin.model.id=qwen2.5-coder-0.5b" })
class Qwen25CoderServiceIT extends ServiceTestBase {

	private static final String MODEL = "qwen2.5-coder-0.5b";

	private static final String PREFIX = "def add(a, b):\n    return ";

	private static final String SUFFIX = "\n\n\nprint(add(2, 3))\n";

	@DynamicPropertySource
	static void model(DynamicPropertyRegistry registry) {
		registry.add("griffin.model.path", () -> Fixtures.namedModel(MODEL).toString());
	}

	private static Map<String, Object> infill(Object prompt, String suffix) {
		return new HashMap<>(
				Map.of("model", MODEL, "prompt", prompt, "suffix", suffix, "max_tokens", 12, "temperature", 0));
	}

	@Test
	void aSuffixFillsInTheMiddle() {
		JsonNode whole = post(this.client, "/v1/completions", infill(PREFIX, SUFFIX), 200);
		String middle = whole.at("/choices/0/text").asText();
		assertThat(middle).startsWith("a + b");
		// the prefix, suffix and middle tokens around the two parts' tokens
		int parts = post(this.client, "/tokenize", Map.of("model", MODEL, "prompt", PREFIX + SUFFIX), 200).at("/count")
			.asInt();
		assertThat(whole.at("/usage/prompt_tokens").asInt()).isBetween(parts + 2, parts + 4);

		// streamed: the same text, token by token
		Map<String, Object> streamed = infill(List.of(PREFIX), SUFFIX);
		streamed.put("stream", true);
		StringBuilder text = new StringBuilder();
		for (String event : events(this.client, "/v1/completions", streamed)) {
			if (!event.equals("[DONE]")) {
				text.append(json(event).at("/choices/0/text").asText(""));
			}
		}
		assertThat(text.toString()).isEqualTo(middle);
	}

	@Test
	void aSuffixNeedsATextPrompt() {
		JsonNode refused = post(this.client, "/v1/completions", infill(List.of(1, 2, 3), SUFFIX), 400);
		assertError(refused, "invalid_request_error", "prompt");
		assertThat(refused.at("/error/message").asText()).contains("suffix");
	}

}

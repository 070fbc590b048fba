package dev.griffin.serve.web;

import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.http.MediaType;

import dev.griffin.serve.GriffinServeApplication;

import static dev.griffin.serve.web.ServiceSupport.assertError;
import static dev.griffin.serve.web.ServiceSupport.completion;
import static dev.griffin.serve.web.ServiceSupport.json;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * A generation past the time limiter's timeout fails with 504, or, once a stream has
 * begun, with an error event followed by [DONE].
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = "resilience4j.timelimiter.instances.generation.timeout-duration=3s")
class TimeoutIT extends ServiceTestBase {

	@Test
	void generationsPastTheTimeLimitFail() throws InterruptedException {
		Map<String, Object> request = completion("Write an endless list of numbers:", 4000);
		request.put("griffin", Map.of("cache", false));
		String whole = this.client.post()
			.uri("/v1/completions")
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue(withIgnoredEos(request))
			.exchange()
			.expectStatus()
			.isEqualTo(504)
			.expectBody(String.class)
			.returnResult()
			.getResponseBody();
		assertError(json(whole), "timeout_error", null);

		request.put("stream", true);
		List<String> events = ServiceSupport.events(this.client, "/v1/completions", withIgnoredEos(request));
		assertThat(events.get(events.size() - 1)).isEqualTo("[DONE]");
		assertError(json(events.get(events.size() - 2)), "timeout_error", null);
		assertThat(events.size()).isGreaterThan(3);
	}

	/** Keep generating past end tokens (vLLM's ignore_eos). */
	private static Map<String, Object> withIgnoredEos(Map<String, Object> request) {
		request.put("ignore_eos", true);
		return request;
	}

}

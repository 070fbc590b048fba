package dev.griffin.serve.web;

import java.time.Duration;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.http.MediaType;
import reactor.core.Disposable;

import dev.griffin.serve.GriffinServeApplication;

import static dev.griffin.serve.web.ServiceSupport.assertError;
import static dev.griffin.serve.web.ServiceSupport.completion;
import static dev.griffin.serve.web.ServiceSupport.json;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * One worker and a queue of one: with both taken, further requests get 429 at once and
 * the server stays healthy. A generation past the time limit fails with 504, or inside a
 * stream with an error event followed by [DONE].
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1", "griffin.generation.queue-capacity=1" })
class OverloadIT extends ServiceTestBase {

	/**
	 * Starts a long stream without waiting for its headers (a queued stream sends none
	 * until it runs).
	 */
	private Disposable longStream() {
		Map<String, Object> request = withIgnoredEos(completion("Tell a very long story about the sea.", 2000));
		request.put("stream", true);
		request.put("griffin", Map.of("cache", false));
		return org.springframework.web.reactive.function.client.WebClient.create("http://localhost:" + this.port)
			.post()
			.uri("/v1/completions")
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue(request)
			.retrieve()
			.bodyToFlux(String.class)
			.subscribe();
	}

	@Test
	void aFullQueueAnswers429QuicklyAndTheServerStaysHealthy() throws InterruptedException {
		Disposable running = longStream();
		Thread.sleep(1000);
		Disposable queued = longStream();
		Thread.sleep(1000);
		try {
			for (int i = 0; i < 5; i++) {
				long start = System.nanoTime();
				String body = this.client.post()
					.uri("/v1/completions")
					.contentType(MediaType.APPLICATION_JSON)
					.bodyValue(completion("one more", 2))
					.exchange()
					.expectStatus()
					.isEqualTo(429)
					.expectHeader()
					.exists("Retry-After")
					.expectBody(String.class)
					.returnResult()
					.getResponseBody();
				assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(1));
				assertError(json(body), "rate_limit_error", null);
				assertThat(json(body).get("error").get("code").asText()).isEqualTo("queue_full");
			}
			this.client.get().uri("/actuator/health/liveness").exchange().expectStatus().isOk();
			this.client.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk();
		}
		finally {
			running.dispose();
			queued.dispose();
		}
	}

	/** Keep generating past end tokens (vLLM's ignore_eos). */
	private static Map<String, Object> withIgnoredEos(Map<String, Object> request) {
		request.put("ignore_eos", true);
		return request;
	}

}

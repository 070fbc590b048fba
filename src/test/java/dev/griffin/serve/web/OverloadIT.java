package dev.griffin.serve.web;

import java.time.Duration;
import java.util.List;
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
import static org.awaitility.Awaitility.await;

/**
 * One worker and a queue of one: with both taken, further requests get 429 at once and
 * the server stays healthy. A generation past the time limit fails with 504, or inside a
 * stream with an error event followed by [DONE]. Streams carry keep-alive comments that
 * leave their events intact. (Engine failures and the circuit breaker: AbuseIT, through
 * the engine's fault-injection probe.)
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1", "griffin.generation.queue-capacity=1",
				"griffin.generation.keep-alive=50ms" })
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
			this.client.get().uri("/actuator/health/liveness").exchange().expectStatus().isOk().expectBody(Void.class);
			this.client.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk().expectBody(Void.class);
		}
		finally {
			running.dispose();
			queued.dispose();
		}
	}

	@Test
	void streamsCarryKeepAliveCommentsBetweenEvents() {
		awaitFreeWorker();
		Map<String, Object> request = withIgnoredEos(completion("Count slowly:", 24));
		request.put("stream", true);
		request.put("griffin", Map.of("cache", false));
		List<String> lines = List.of(ServiceSupport.rawStream(this.client, "/v1/completions", request).split("\n"));
		// 24 tokens take most of a second: at 50 ms, several comments
		assertThat(lines.stream().filter((line) -> line.equals(":keep-alive")).count()).isGreaterThanOrEqualTo(3);
		assertThat(lines.stream()
			.filter((line) -> !line.isEmpty())
			.allMatch(
					(line) -> line.startsWith("data: {") || line.equals("data: [DONE]") || line.equals(":keep-alive")))
			.isTrue();
		List<String> data = lines.stream()
			.filter((line) -> line.startsWith("data: "))
			.map((line) -> line.substring("data: ".length()))
			.toList();
		assertThat(data.get(data.size() - 1)).isEqualTo("[DONE]");
		// every data event but [DONE] is a chunk; the last one ends the choice
		// at the budget
		assertThat(data.size()).isGreaterThan(2);
		for (String event : data.subList(0, data.size() - 1)) {
			assertThat(json(event).path("object").asText()).as(event).isEqualTo("text_completion");
		}
		assertThat(json(data.get(data.size() - 2)).get("choices").get(0).get("finish_reason").asText())
			.isEqualTo("length");
	}

	/**
	 * Waits until streams of an earlier test have let go of the worker and the queue; if
	 * they never do, fails with what the polls and the engine's gauges saw.
	 */
	private void awaitFreeWorker() {
		java.util.concurrent.atomic.AtomicInteger polls = new java.util.concurrent.atomic.AtomicInteger();
		java.util.concurrent.atomic.AtomicInteger last = new java.util.concurrent.atomic.AtomicInteger();
		try {
			await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).until(() -> {
				int status = this.client.post()
					.uri("/v1/completions")
					.contentType(MediaType.APPLICATION_JSON)
					.bodyValue(completion("one more", 2))
					.exchange()
					.expectBody()
					.returnResult()
					.getStatus()
					.value();
				polls.incrementAndGet();
				last.set(status);
				// busy is a 429; anything else is a failure, not something to wait out
				assertThat(status).isIn(200, 429);
				return status == 200;
			});
		}
		catch (org.awaitility.core.ConditionTimeoutException ex) {
			String metrics = ServiceSupport.getText(this.client, "/actuator/prometheus");
			throw new AssertionError(
					"no free worker within 60 s: %d polls answered, the last %d; running %.0f, waiting %.0f".formatted(
							polls.get(), last.get(), ServiceSupport.metric(metrics, "griffin_requests_running"),
							ServiceSupport.metric(metrics, "griffin_requests_waiting")),
					ex);
		}
	}

	/** Keep generating past end tokens (vLLM's ignore_eos). */
	private static Map<String, Object> withIgnoredEos(Map<String, Object> request) {
		request.put("ignore_eos", true);
		return request;
	}

}

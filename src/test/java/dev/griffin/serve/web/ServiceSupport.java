package dev.griffin.serve.web;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.springframework.http.MediaType;
import org.springframework.test.web.reactive.server.WebTestClient;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Helpers for tests against a running service. */
final class ServiceSupport {

	static final String MODEL = "SmolLM2-135M-Instruct";

	static final ObjectMapper JSON = new ObjectMapper();

	private ServiceSupport() {
	}

	static WebTestClient client(int port) {
		return WebTestClient.bindToServer()
			.baseUrl("http://localhost:" + port)
			.responseTimeout(Duration.ofMinutes(2))
			.codecs((codecs) -> codecs.defaultCodecs().maxInMemorySize(16 << 20))
			.build();
	}

	static JsonNode json(String text) {
		try {
			return JSON.readTree(text);
		}
		catch (java.io.IOException ex) {
			throw new IllegalStateException("not JSON: " + text, ex);
		}
	}

	static JsonNode post(WebTestClient client, String path, Map<String, Object> body, int status) {
		String response = client.post()
			.uri(path)
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue(body)
			.exchange()
			.expectStatus()
			.isEqualTo(status)
			.expectBody(String.class)
			.returnResult()
			.getResponseBody();
		return json(response);
	}

	/**
	 * The data payloads of an SSE response, in order ("[DONE]" included as text); every
	 * data line must have the conventional space after the colon.
	 */
	static List<String> events(WebTestClient client, String path, Map<String, Object> body) {
		List<String> data = new ArrayList<>();
		for (String line : rawStream(client, path, body).split("\n")) {
			if (line.startsWith("data:")) {
				assertThat(line).startsWith("data: ").doesNotStartWith("data:  ");
				data.add(line.substring("data: ".length()));
			}
		}
		return data;
	}

	/** The whole SSE body of a 200 text/event-stream response, comments included. */
	static String rawStream(WebTestClient client, String path, Map<String, Object> body) {
		return client.post()
			.uri(path)
			.contentType(MediaType.APPLICATION_JSON)
			.accept(MediaType.TEXT_EVENT_STREAM)
			.bodyValue(body)
			.exchange()
			.expectStatus()
			.isOk()
			.expectHeader()
			.contentTypeCompatibleWith(MediaType.TEXT_EVENT_STREAM)
			.expectBody(String.class)
			.returnResult()
			.getResponseBody();
	}

	static void assertError(JsonNode body, String type, String param) {
		assertThat(body.has("error")).as("OpenAI error envelope: %s", body).isTrue();
		JsonNode error = body.get("error");
		assertThat(error.get("message").asText()).isNotBlank();
		assertThat(error.get("type").asText()).isEqualTo(type);
		assertThat(error.has("param")).isTrue();
		assertThat(error.has("code")).isTrue();
		if (param != null) {
			assertThat(error.get("param").asText()).isEqualTo(param);
		}
	}

	static Map<String, Object> completion(String prompt, int maxTokens) {
		return new java.util.HashMap<>(
				Map.of("model", MODEL, "prompt", prompt, "max_tokens", maxTokens, "temperature", 0));
	}

	static Map<String, Object> chat(String content, int maxTokens) {
		return new java.util.HashMap<>(Map.of("model", MODEL, "messages",
				List.of(Map.of("role", "user", "content", content)), "max_tokens", maxTokens, "temperature", 0));
	}

	/**
	 * Polls readiness for up to 2 minutes. Each poll must be answered within 10 s: a
	 * request left unanswered on a keep-alive connection is a server defect (Reactor
	 * Netty 1.3.6 had one, see
	 * {@code AbuseIT.pipelinedRequestsAreAnsweredAndTheConnectionServesTheNext}), so it
	 * fails the test instead of being retried.
	 */
	static void awaitReady(WebTestClient client) {
		WebTestClient polling = client.mutate().responseTimeout(Duration.ofSeconds(10)).build();
		long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
		while (System.nanoTime() < deadline) {
			int status = polling.get()
				.uri("/actuator/health/readiness")
				.exchange()
				.expectBody()
				.returnResult()
				.getStatus()
				.value();
			if (status == 200) {
				return;
			}
			try {
				Thread.sleep(200);
			}
			catch (InterruptedException ex) {
				Thread.currentThread().interrupt();
				throw new IllegalStateException(ex);
			}
		}
		throw new IllegalStateException("the service did not become ready in 2 minutes");
	}

	/**
	 * Waits until no generation runs or waits (per the Prometheus gauges): requests an
	 * earlier client abandoned keep the worker busy until they finish, and a test that
	 * measures a browser or a timeout should not share the two cores with them.
	 */
	static void awaitIdle(WebTestClient client) {
		await().atMost(Duration.ofMinutes(3)).pollInterval(Duration.ofMillis(500)).until(() -> {
			String metrics = getText(client, "/actuator/prometheus");
			return metric(metrics, "griffin_requests_running") == 0 && metric(metrics, "griffin_requests_waiting") == 0;
		});
	}

	/** The body of a GET that must answer 200. */
	static String getText(WebTestClient client, String path) {
		return client.get()
			.uri(path)
			.exchange()
			.expectStatus()
			.isOk()
			.expectBody(String.class)
			.returnResult()
			.getResponseBody();
	}

	/** A sample's value from Prometheus scrape text; fails when it is not exported. */
	static double metric(String metrics, String name) {
		for (String line : metrics.split("\n")) {
			if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
				return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
			}
		}
		throw new AssertionError("no metric " + name + " in /actuator/prometheus");
	}

}

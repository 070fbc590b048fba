package dev.griffin.serve.web;

import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.web.reactive.server.WebTestClient;

import dev.griffin.serve.GriffinServeApplication;

import static dev.griffin.serve.web.ServiceSupport.assertError;
import static dev.griffin.serve.web.ServiceSupport.completion;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * A model that cannot load: the service stays up, readiness is down (the reason on
 * /actuator/health), model routes answer 503.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = "griffin.model.path=/nonexistent/model.gguf")
class NotReadyIT {

	@LocalServerPort
	int port;

	@Test
	void modelRoutesAre503UntilTheModelIsReady() throws InterruptedException {
		WebTestClient client = ServiceSupport.client(this.port);
		Thread.sleep(500);
		client.get().uri("/actuator/health/liveness").exchange().expectStatus().isOk().expectBody(Void.class);
		// the probe only says DOWN; /actuator/health says why
		assertThat(unavailable(client, "/actuator/health/readiness")).doesNotContain("nonexistent");
		assertThat(unavailable(client, "/actuator/health")).contains("does not exist");
		var error = ServiceSupport.post(client, "/v1/completions", completion("x", 2), 503);
		assertError(error, "server_error", null);
		assertThat(error.get("error").get("code").asText()).isEqualTo("model_not_ready");
	}

	/** The body of a GET that must answer 503. */
	private static String unavailable(WebTestClient client, String path) {
		return client.get()
			.uri(path)
			.exchange()
			.expectStatus()
			.isEqualTo(503)
			.expectBody(String.class)
			.returnResult()
			.getResponseBody();
	}

}

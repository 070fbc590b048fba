package dev.griffin.serve.web;

import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.http.MediaType;
import org.springframework.test.web.reactive.server.WebTestClient;

import dev.griffin.serve.GriffinServeApplication;

import static dev.griffin.serve.web.ServiceSupport.assertError;
import static dev.griffin.serve.web.ServiceSupport.completion;
import static dev.griffin.serve.web.ServiceSupport.json;
import static org.assertj.core.api.Assertions.assertThat;

/** API keys, per-tenant cache salts and per-key rate limits. */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.security.api-keys=key-alice,key-bob,key-carol",
				"resilience4j.ratelimiter.configs.generation.limit-for-period=4",
				"resilience4j.ratelimiter.configs.generation.limit-refresh-period=60s" })
class SecurityIT extends ServiceTestBase {

	private WebTestClient.ResponseSpec call(String key, Map<String, Object> body) {
		WebTestClient.RequestBodySpec spec = this.client.post()
			.uri("/v1/completions")
			.contentType(MediaType.APPLICATION_JSON);
		if (key != null) {
			spec = spec.header("Authorization", "Bearer " + key);
		}
		return spec.bodyValue(body).exchange();
	}

	private static JsonNode body(WebTestClient.ResponseSpec response) {
		return json(response.expectBody(String.class).returnResult().getResponseBody());
	}

	@Test
	void modelRoutesNeedAValidKeyAndHealthDoesNot() {
		assertError(body(call(null, completion("Hi", 2)).expectStatus().isUnauthorized()), "authentication_error",
				null);
		assertError(body(call("key-mallory", completion("Hi", 2)).expectStatus().isUnauthorized()),
				"authentication_error", null);
		this.client.get().uri("/v1/models").exchange().expectStatus().isUnauthorized().expectBody(Void.class);
		this.client.get()
			.uri("/v1/models")
			.header("Authorization", "Bearer key-carol")
			.exchange()
			.expectStatus()
			.isOk()
			.expectBody(Void.class);
		this.client.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk().expectBody(Void.class);
	}

	@Test
	void tenantsNeverShareCacheEntries() {
		Map<String, Object> request = completion("A secret prompt that only one tenant has seen before", 4);
		JsonNode alice = body(call("key-alice", request).expectStatus().isOk());
		JsonNode aliceAgain = body(call("key-alice", request).expectStatus().isOk());
		JsonNode bob = body(call("key-bob", request).expectStatus().isOk());
		assertThat(alice.get("griffin").get("cache_hit").asBoolean()).isFalse();
		assertThat(aliceAgain.get("griffin").get("cache_hit").asBoolean()).isTrue();
		assertThat(bob.get("griffin").get("cache_hit").asBoolean()).as("another tenant's repeat").isFalse();
		assertThat(bob.get("choices").get(0).get("text").asText())
			.isEqualTo(alice.get("choices").get(0).get("text").asText());
	}

	@Test
	void eachKeyHasItsOwnRateLimit() {
		// key-carol: 4 requests per minute (one was spent by no other test on this key)
		int ok = 0;
		WebTestClient.ResponseSpec limited = null;
		for (int i = 0; i < 6 && limited == null; i++) {
			WebTestClient.ResponseSpec response = call("key-carol", completion("Count " + i, 1));
			int status = response.expectBody().returnResult().getStatus().value();
			if (status == 429) {
				limited = call("key-carol", completion("again", 1));
			}
			else {
				assertThat(status).isEqualTo(200);
				ok++;
			}
		}
		assertThat(ok).isBetween(3, 4);
		assertThat(limited).isNotNull();
		limited.expectStatus().isEqualTo(429).expectHeader().exists("Retry-After").expectBody(Void.class);
		// another key is not affected
		call("key-bob", completion("Still fine", 1)).expectStatus().isOk().expectBody(Void.class);
	}

}

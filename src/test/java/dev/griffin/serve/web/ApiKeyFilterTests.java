package dev.griffin.serve.web;

import java.util.List;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class ApiKeyFilterTests {

	@Test
	void onlyPlainPathsAreCanonical() {
		for (String path : List.of("/", "/v1/models", "/v1/chat/completions", "/tokenize", "/actuator/health/liveness",
				"/swagger-ui/index.html", "/v1/models/")) {
			assertThat(ApiKeyFilter.isCanonical(path)).as(path).isTrue();
		}
		for (String path : List.of("/v1;x/models", "/v1/models;jsessionid=1", "/%76%31/models", "/v1%2Fmodels",
				"/v1//models", "/v1/./models", "/v1/../v1/models", "/./v1", "/..", "v1/models", "/v1/models%00",
				"/v1\\models", "/v1/mod els", "/v1/" + "a".repeat(3000))) {
			assertThat(ApiKeyFilter.isCanonical(path)).as(path).isFalse();
		}
	}

	@Test
	void withKeysOnlyTheProbesAndOptionallyTheDocsArePublic() {
		ApiKeyFilter closed = new ApiKeyFilter(List.of("k"), 1 << 20, false);
		ApiKeyFilter openDocs = new ApiKeyFilter(List.of("k"), 1 << 20, true);
		for (String path : List.of("/actuator/health/liveness", "/actuator/health/readiness")) {
			assertThat(closed.isPublic(path)).as(path).isTrue();
		}
		for (String path : List.of("/actuator/health", "/actuator/prometheus", "/v1/models", "/swagger-ui.html",
				"/v3/api-docs", "/actuator/health/livenessx", "/unknown")) {
			assertThat(closed.isPublic(path)).as(path).isFalse();
		}
		for (String path : List.of("/swagger-ui.html", "/swagger-ui/index.html", "/v3/api-docs",
				"/v3/api-docs/swagger-config", "/webjars/swagger-ui/index.css")) {
			assertThat(openDocs.isPublic(path)).as(path).isTrue();
		}
		for (String path : List.of("/v3/api-docsx", "/swagger-ui.htmlx", "/v1/models")) {
			assertThat(openDocs.isPublic(path)).as(path).isFalse();
		}
	}

}

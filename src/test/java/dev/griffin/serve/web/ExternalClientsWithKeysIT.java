package dev.griffin.serve.web;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.web.reactive.server.WebTestClient;

import dev.griffin.serve.GriffinServeApplication;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * schemathesis fuzzing the published OpenAPI document, with API keys on (the strictest
 * configuration; without keys the same operations run with one filter less): no server
 * errors, no response outside the published schema, and (its {@code ignored_auth} check)
 * every operation that declares the bearer scheme refuses requests without it or with a
 * wrong key. Generations are short (4 tokens at most, heatmaps included), so the run
 * measures the API and not the engine.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.security.api-keys=fuzz-key", "griffin.security.public-docs=true",
				"griffin.generation.max-tokens-limit=4", "griffin.generation.default-max-tokens=4",
				"griffin.generation.queue-capacity=32", "griffin.generation.max-concurrent-per-key=32" })
class ExternalClientsWithKeysIT {

	@LocalServerPort
	int port;

	@Test
	void schemathesisWithKeysFindsNoServerErrorsSchemaViolationsOrIgnoredAuth() throws Exception {
		WebTestClient client = ServiceSupport.client(this.port);
		ServiceSupport.awaitReady(client);
		Path schemathesis = Path.of(".venv/bin/schemathesis").toAbsolutePath();
		assertThat(schemathesis).as(".venv/bin/schemathesis is installed by .ci/run").exists();
		List<String> command = List.of(schemathesis.toString(), "run", "http://localhost:" + this.port + "/v3/api-docs",
				"--url", "http://localhost:" + this.port, "--header", "Authorization: Bearer fuzz-key", "--checks",
				"not_a_server_error,response_schema_conformance,ignored_auth", "--max-examples", "20", "--seed", "2",
				"--request-timeout", "60", "--no-color");
		File log = File.createTempFile("schemathesis", ".log");
		Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log).start();
		boolean finished = process.waitFor(900, TimeUnit.SECONDS);
		if (!finished) {
			process.destroyForcibly();
		}
		String output = Files.readString(log.toPath(), StandardCharsets.UTF_8);
		System.out.println(output);
		assertThat(finished).as("schemathesis finished in 900 s").isTrue();
		// the errors and failures, each with its request, come before the summary
		int from = output.indexOf("=== ERRORS");
		if (from < 0) {
			from = output.indexOf("=== FAILURES");
		}
		int to = output.indexOf("=== SUMMARY");
		String found = (from >= 0 && to > from) ? output.substring(from, to) : output;
		assertThat(process.exitValue()).as("schemathesis exit status; what it found:%n%s", found).isZero();
		assertThat(output).doesNotContain("FAILURES");
	}

}

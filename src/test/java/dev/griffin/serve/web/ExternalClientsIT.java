package dev.griffin.serve.web;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.web.reactive.server.WebTestClient;

import dev.griffin.serve.GriffinServeApplication;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The service as real clients see it: the official OpenAI Python client and Swagger UI's
 * "Try it out" in headless Chromium. The tools are installed by .ci/run (.venv,
 * src/test/e2e/node_modules, Debian's chromium); a missing tool fails the test rather
 * than skipping it.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.max-tokens-limit=16", "griffin.generation.queue-capacity=32" })
class ExternalClientsIT {

	@LocalServerPort
	int port;

	@BeforeEach
	void readyAndIdle() {
		WebTestClient client = ServiceSupport.client(this.port);
		ServiceSupport.awaitReady(client);
		// a client's timed-out requests may still be generating
		ServiceSupport.awaitIdle(client);
	}

	private static Path tool(String path) {
		Path tool = Path.of(path).toAbsolutePath();
		assertThat(tool).as("%s is installed by .ci/run", path).exists();
		return tool;
	}

	/** Runs a command, echoes its output, and returns it; fails on a non-zero exit. */
	private static String run(List<String> command, long timeoutSeconds) throws IOException, InterruptedException {
		File log = File.createTempFile("external", ".log");
		Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log).start();
		boolean finished = process.waitFor(timeoutSeconds, TimeUnit.SECONDS);
		if (!finished) {
			process.destroyForcibly();
		}
		String output = Files.readString(log.toPath(), StandardCharsets.UTF_8);
		System.out.println(output);
		assertThat(finished).as("%s finished in %d s", command.get(0), timeoutSeconds).isTrue();
		assertThat(process.exitValue()).as("exit status of %s; output:%n%s", command, output).isZero();
		return output;
	}

	@Test
	void officialOpenAiPythonClient() throws Exception {
		String output = run(List.of(tool(".venv/bin/python").toString(), "src/test/python/openai_client_check.py",
				"http://localhost:" + this.port + "/v1", ServiceSupport.MODEL), 300);
		assertThat(output).contains("openai client: all checks passed").doesNotContain("FAIL");
	}

	@Test
	void swaggerUiTryItOutInChromium() throws Exception {
		tool("src/test/e2e/node_modules/playwright-core");
		Path screenshot = Path.of("target/swagger-ui.png").toAbsolutePath();
		Files.deleteIfExists(screenshot);
		String output = run(
				List.of("node", "src/test/e2e/swagger-ui.mjs", "http://localhost:" + this.port, screenshot.toString()),
				300);
		assertThat(output).contains("swagger-ui: 200");
		assertThat(Files.size(screenshot)).isGreaterThan(10_000);
	}

}

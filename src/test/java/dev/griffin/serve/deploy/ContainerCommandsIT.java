package dev.griffin.serve.deploy;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * What the Dockerfile runs, run here without Docker (no engine on the build machines):
 * the model stage's fetch into an empty model directory, then the runtime stage's
 * entrypoint with the image's environment, as a non-root-style process whose working
 * directory and home are read-only (only /tmp-like scratch is writable, as with
 * readOnlyRootFilesystem and an emptyDir), then the HEALTHCHECK command and the chart's
 * probe paths against it. The Maven build stage is what CI itself runs.
 */
class ContainerCommandsIT {

	private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(10);

	@TempDir
	Path root;

	@Test
	void fetchEntrypointHealthcheckAndProbes() throws Exception {
		String dockerfile = Files.readString(Path.of("Dockerfile"));
		// model stage
		Path models = this.root.resolve("models");
		ProcessBuilder modelStage = new ProcessBuilder("scripts/fetch-model").redirectErrorStream(true)
			.redirectOutput(this.root.resolve("fetch.log").toFile());
		modelStage.environment().put("GRIFFIN_MODEL_DIR", models.toString());
		Process stage = modelStage.start();
		assertThat(stage.waitFor(300, TimeUnit.SECONDS)).isTrue();
		assertThat(stage.exitValue()).as("fetch-model: %s", Files.readString(this.root.resolve("fetch.log"))).isZero();
		assertThat(models.resolve("SmolLM2-135M-Instruct.Q4_1.gguf")).exists();

		// runtime stage: /app read-only with the jar, scratch for /tmp, read-only home
		// and working directory
		Path app = Files.createDirectories(this.root.resolve("app"));
		Path jar = Files.list(Path.of("target"))
			.filter((p) -> p.getFileName().toString().matches("griffin-serve-.*\\.jar"))
			.findFirst()
			.orElseThrow(() -> new AssertionError("build the jar first (mvn package)"));
		Files.copy(jar, app.resolve("griffin-serve.jar"));
		Files.copy(Path.of("docker/entrypoint.sh"), app.resolve("entrypoint.sh"));
		Path tmp = Files.createDirectories(this.root.resolve("tmp"));
		Path home = Files.createDirectories(this.root.resolve("home"));
		for (Path readOnly : List.of(app, home)) {
			Files.setPosixFilePermissions(readOnly, PosixFilePermissions.fromString("r-xr-xr-x"));
		}
		int port = freePort();
		ProcessBuilder runtime = new ProcessBuilder("sh", app.resolve("entrypoint.sh").toString(),
				"--server.port=" + port)
			.directory(app.toFile())
			.redirectErrorStream(true)
			.redirectOutput(this.root.resolve("server.log").toFile());
		Map<String, String> env = runtime.environment();
		env.put("HOME", home.toString());
		env.put("GRIFFIN_JAR", app.resolve("griffin-serve.jar").toString());
		env.put("GRIFFIN_MODEL_DIR", models.toString());
		env.put("DJL_CACHE_DIR", tmp.resolve("djl").toString());
		env.put("HF_HOME", tmp.resolve("huggingface").toString());
		env.put("JAVA_TOOL_OPTIONS", javaToolOptions(dockerfile).replace("/tmp", tmp.toString()));
		Process server = runtime.start();
		try {
			// HTTP/1.1 without an h2c upgrade, as kubelet probes speak; a request that
			// gets no answer fails after 10 s instead of blocking the build (once, the
			// server left a reused connection's request unread and the test waited 25
			// minutes)
			HttpClient http = HttpClient.newBuilder()
				.version(HttpClient.Version.HTTP_1_1)
				.connectTimeout(Duration.ofSeconds(10))
				.build();
			awaitReady(http, port, server);
			// the image's HEALTHCHECK command, verbatim
			Process check = new ProcessBuilder("bash", "-c",
					healthcheck(dockerfile).replace("8080", String.valueOf(port)))
				.start();
			assertThat(check.waitFor(10, TimeUnit.SECONDS)).isTrue();
			assertThat(check.exitValue()).as("HEALTHCHECK exit status").isZero();
			// the chart's probe paths
			JsonNode values = KubernetesManifests.documents(Files.readString(Path.of("helm/griffin-serve/values.yaml")))
				.get(0);
			for (String probe : List.of("startup", "readiness", "liveness")) {
				String path = values.path("probes").path(probe).path("path").asText();
				HttpResponse<String> response = http
					.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
						.timeout(REQUEST_TIMEOUT)
						.build(), HttpResponse.BodyHandlers.ofString());
				assertThat(response.statusCode()).as("%s probe %s", probe, path).isEqualTo(200);
			}
			assertThat(server.isAlive()).isTrue();
		}
		finally {
			server.destroy();
			server.waitFor(30, TimeUnit.SECONDS);
			for (Path readOnly : List.of(app, home)) {
				Files.setPosixFilePermissions(readOnly, PosixFilePermissions.fromString("rwxr-xr-x"));
			}
		}
	}

	private static String javaToolOptions(String dockerfile) {
		Matcher matcher = Pattern.compile("JAVA_TOOL_OPTIONS=\"([^\"]+)\"").matcher(dockerfile);
		assertThat(matcher.find()).as("JAVA_TOOL_OPTIONS in the Dockerfile").isTrue();
		return matcher.group(1);
	}

	private static String healthcheck(String dockerfile) {
		Matcher matcher = Pattern.compile("CMD \\[\"bash\", \"-c\", \"(.+)\"\\]").matcher(dockerfile);
		assertThat(matcher.find()).as("HEALTHCHECK command in the Dockerfile").isTrue();
		return matcher.group(1).replace("\\\\", "\\");
	}

	private void awaitReady(HttpClient http, int port, Process server) throws Exception {
		long deadline = System.nanoTime() + Duration.ofMinutes(3).toNanos();
		while (System.nanoTime() < deadline) {
			assertThat(server.isAlive()).as("server log:%n%s", Files.readString(this.root.resolve("server.log")))
				.isTrue();
			try {
				HttpResponse<String> response = http
					.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/actuator/health/readiness"))
						.timeout(REQUEST_TIMEOUT)
						.build(), HttpResponse.BodyHandlers.ofString());
				if (response.statusCode() == 200) {
					return;
				}
			}
			catch (java.io.IOException ex) {
				// not listening yet
			}
			Thread.sleep(500);
		}
		throw new AssertionError("not ready in 3 minutes:\n" + Files.readString(this.root.resolve("server.log")));
	}

	private static int freePort() throws java.io.IOException {
		try (java.net.ServerSocket socket = new java.net.ServerSocket(0)) {
			return socket.getLocalPort();
		}
	}

}

package dev.griffin.serve.deploy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPOutputStream;

import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The CUDA stage's download step, run as the Dockerfile writes it (without apt-get, with
 * its paths moved into a scratch directory) against a local server: it installs files
 * that match docker/libtorch-cu128.sha256 and refuses a tampered file, a file without a
 * checksum, and an empty checksum list.
 */
class CudaDownloadTests {

	@TempDir
	Path root;

	private HttpServer server;

	private final Map<String, byte[]> files = new java.util.concurrent.ConcurrentHashMap<>();

	@BeforeEach
	void serve() throws IOException {
		this.server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
		this.server.createContext("/", (exchange) -> {
			byte[] body = this.files.get(exchange.getRequestURI().getPath().substring(1));
			exchange.sendResponseHeaders((body != null) ? 200 : 404, (body != null) ? body.length : -1);
			if (body != null) {
				try (OutputStream out = exchange.getResponseBody()) {
					out.write(body);
				}
			}
			exchange.close();
		});
		this.server.start();
	}

	@AfterEach
	void stop() {
		this.server.stop(0);
	}

	private static byte[] gzip(String text) throws IOException {
		ByteArrayOutputStream bytes = new ByteArrayOutputStream();
		try (GZIPOutputStream out = new GZIPOutputStream(bytes)) {
			out.write(text.getBytes(StandardCharsets.UTF_8));
		}
		return bytes.toByteArray();
	}

	private static String sha256(byte[] bytes) throws Exception {
		return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
	}

	/**
	 * The download RUN instruction of the CUDA stage, its paths moved under the scratch
	 * directory.
	 */
	private String downloadScript() throws IOException {
		String dockerfile = Files.readString(Path.of("Dockerfile")).replace("\\\n", " ");
		Matcher matcher = Pattern
			.compile("COPY docker/libtorch-cu128.sha256 /tmp/libtorch.sha256\nRUN (.*?)\n\n", Pattern.DOTALL)
			.matcher(dockerfile);
		assertThat(matcher.find()).as("the CUDA stage's download in the Dockerfile").isTrue();
		String script = matcher.group(1);
		// the package installation needs root and a network; the rest runs as written
		script = script.substring(script.indexOf("&& mkdir -p /tmp/libtorch") + 3);
		return script.replace("/tmp/", this.root + "/tmp/").replace("/opt/", this.root + "/opt/");
	}

	private int run(String sums) throws Exception {
		Files.createDirectories(this.root.resolve("tmp"));
		Files.writeString(this.root.resolve("tmp/libtorch.sha256"), sums);
		ProcessBuilder builder = new ProcessBuilder("bash", "-euc", downloadScript()).redirectErrorStream(true)
			.redirectOutput(this.root.resolve("download.log").toFile());
		builder.environment().put("LIBTORCH_URL", "http://127.0.0.1:" + this.server.getAddress().getPort());
		Process process = builder.start();
		assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
		return process.exitValue();
	}

	@Test
	void filesThatMatchTheirChecksumsAreInstalledAndNoOthers() throws Exception {
		byte[] torch = gzip("libtorch");
		byte[] cuda = gzip("libcudart");
		this.files.put("files.txt", "lib/libtorch.so.gz\nlib/libcudart.so.gz\n".getBytes(StandardCharsets.UTF_8));
		this.files.put("lib/libtorch.so.gz", torch);
		this.files.put("lib/libcudart.so.gz", cuda);
		String sums = "# comment\n" + sha256(torch) + "  libtorch.so.gz\n" + sha256(cuda) + "  libcudart.so.gz\n";
		assertThat(run(sums)).as(Files.readString(this.root.resolve("download.log"))).isZero();
		assertThat(Files.readString(this.root.resolve("opt/libtorch/lib/libtorch.so"))).isEqualTo("libtorch");
		assertThat(Files.readString(this.root.resolve("opt/libtorch/lib/libcudart.so"))).isEqualTo("libcudart");

		// a tampered file
		this.files.put("lib/libcudart.so.gz", gzip("something else"));
		Files.walk(this.root.resolve("opt"))
			.sorted(java.util.Comparator.reverseOrder())
			.forEach((p) -> p.toFile().delete());
		assertThat(run(sums)).isNotZero();
		assertThat(this.root.resolve("opt/libtorch/lib/libcudart.so")).doesNotExist();
		// a file without a checksum, and the empty list the repository ships
		this.files.put("lib/libcudart.so.gz", cuda);
		assertThat(run("# comment\n" + sha256(torch) + "  libtorch.so.gz\n")).isNotZero();
		assertThat(run(Files.readString(Path.of("docker/libtorch-cu128.sha256")))).isNotZero();
	}

}

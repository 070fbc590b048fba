package dev.griffin.serve.hub;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.weights.Checkpoint;
import dev.griffin.serve.weights.CheckpointException;
import dev.griffin.serve.weights.Checkpoints;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The Hub downloader against a local server that speaks the Hub's URL layout
 * ({@code /api/models/..}, {@code /{repo}/resolve/{commit}/{file}} with ETag and size
 * headers, Range requests): fresh download into the Hugging Face cache layout, resume
 * after a cut connection, reuse of a warm cache, 401 and 404.
 */
class HubDownloaderTests {

	private static final String COMMIT = "0123456789abcdef0123456789abcdef01234567";

	@TempDir
	Path cache;

	private HttpServer server;

	private final Map<String, byte[]> files = new LinkedHashMap<>();

	private final AtomicInteger downloads = new AtomicInteger();

	/** Bytes after which the next GET of model.safetensors is cut off (-1: never). */
	private volatile long cutAfter = -1;

	private volatile int lastRangeStart = -1;

	private URI endpoint;

	@BeforeEach
	void start() throws IOException {
		// a real checkpoint: the tiny Mistral fixture
		for (String name : new String[] { "config.json", "generation_config.json", "model.safetensors" }) {
			this.files.put(name, Files.readAllBytes(Fixtures.path("tiny-mistral/" + name)));
		}
		this.files.put("tokenizer.json", "{}".getBytes(StandardCharsets.UTF_8));
		this.files.put("chat_template.jinja", "{{ messages[0]['content'] }}".getBytes(StandardCharsets.UTF_8));
		this.server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
		this.server.createContext("/", this::handle);
		this.server.start();
		this.endpoint = URI.create("http://127.0.0.1:" + this.server.getAddress().getPort());
	}

	@AfterEach
	void stop() {
		this.server.stop(0);
	}

	private void handle(HttpExchange exchange) throws IOException {
		String path = exchange.getRequestURI().getPath();
		boolean gated = path.contains("org/gated");
		String auth = exchange.getRequestHeaders().getFirst("Authorization");
		if (gated && !"Bearer secret".equals(auth)) {
			reply(exchange, 401, "{\"error\":\"Access to model org/gated is restricted.\"}".getBytes());
			return;
		}
		if (path.startsWith("/api/models/org/tiny/revision/") || path.startsWith("/api/models/org/gated/revision/")) {
			StringBuilder siblings = new StringBuilder();
			for (String name : this.files.keySet()) {
				siblings.append(siblings.isEmpty() ? "" : ",").append("{\"rfilename\":\"").append(name).append("\"}");
			}
			reply(exchange, 200, ("{\"sha\":\"" + COMMIT + "\",\"siblings\":[" + siblings + "]}").getBytes());
			return;
		}
		String prefix = path.startsWith("/org/gated/") ? "/org/gated/resolve/" + COMMIT + "/"
				: "/org/tiny/resolve/" + COMMIT + "/";
		if (path.startsWith(prefix) && this.files.containsKey(path.substring(prefix.length()))) {
			String name = path.substring(prefix.length());
			byte[] body = this.files.get(name);
			boolean lfs = name.endsWith(".safetensors");
			exchange.getResponseHeaders().set(lfs ? "X-Linked-Etag" : "ETag", "\"" + etag(body, lfs) + "\"");
			exchange.getResponseHeaders().set("X-Repo-Commit", COMMIT);
			if (exchange.getRequestMethod().equals("HEAD")) {
				exchange.getResponseHeaders().set("X-Linked-Size", String.valueOf(body.length));
				exchange.sendResponseHeaders(200, -1);
				exchange.close();
				return;
			}
			this.downloads.incrementAndGet();
			int from = 0;
			String range = exchange.getRequestHeaders().getFirst("Range");
			if (range != null) {
				from = Integer.parseInt(range.replaceAll("bytes=(\\d+)-.*", "$1"));
				this.lastRangeStart = from;
				exchange.getResponseHeaders()
					.set("Content-Range", "bytes %d-%d/%d".formatted(from, body.length - 1, body.length));
			}
			long cut = lfs ? this.cutAfter : -1;
			exchange.sendResponseHeaders((range != null) ? 206 : 200, body.length - from);
			try (OutputStream out = exchange.getResponseBody()) {
				int end = (cut >= 0) ? (int) Math.min(body.length, from + cut) : body.length;
				out.write(body, from, end - from);
				if (cut >= 0) {
					this.cutAfter = -1;
					out.flush();
					throw new IOException("connection cut by the test server");
				}
			}
			return;
		}
		exchange.getResponseHeaders()
			.set("X-Error-Code", path.contains("/resolve/") ? "EntryNotFound" : "RepoNotFound");
		reply(exchange, 404, "{\"error\":\"not found\"}".getBytes());
	}

	private static void reply(HttpExchange exchange, int status, byte[] body) throws IOException {
		exchange.sendResponseHeaders(status, body.length);
		try (OutputStream out = exchange.getResponseBody()) {
			out.write(body);
		}
	}

	private static String etag(byte[] body, boolean lfs) {
		try {
			MessageDigest digest = MessageDigest.getInstance(lfs ? "SHA-256" : "SHA-1");
			if (!lfs) {
				digest.update(("blob " + body.length + "\0").getBytes(StandardCharsets.UTF_8));
			}
			return HexFormat.of().formatHex(digest.digest(body));
		}
		catch (Exception ex) {
			throw new IllegalStateException(ex);
		}
	}

	private HubDownloader downloader(String token) {
		return new HubDownloader(this.endpoint, this.cache, token);
	}

	@Test
	void downloadsIntoTheHuggingFaceCacheLayoutAndLoads() throws IOException {
		Path snapshot = downloader(null).fetch("hf://org/tiny");
		Path repo = this.cache.resolve("models--org--tiny");
		assertThat(snapshot).isEqualTo(repo.resolve("snapshots").resolve(COMMIT));
		assertThat(Files.readString(repo.resolve("refs/main"))).isEqualTo(COMMIT);
		assertThat(Files.isSymbolicLink(snapshot.resolve("model.safetensors"))).isTrue();
		assertThat(repo.resolve("blobs").resolve(etag(this.files.get("model.safetensors"), true))).exists();
		assertThat(Files.readAllBytes(snapshot.resolve("config.json"))).isEqualTo(this.files.get("config.json"));
		assertThat(Files.readAllBytes(snapshot.resolve("chat_template.jinja")))
			.as("the chat template transformers 5 saves beside the tokenizer")
			.isEqualTo(this.files.get("chat_template.jinja"));
		try (Checkpoint checkpoint = Checkpoints.open(snapshot)) {
			assertThat(checkpoint.config().hiddenSize()).isEqualTo(64);
			checkpoint.layer(1);
		}
	}

	@Test
	void resumesAfterACutConnection() throws IOException {
		this.cutAfter = 100_000;
		assertThatThrownBy(() -> downloader(null).fetch("hf://org/tiny")).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("model.safetensors broke off")
			.hasMessageContaining("run again to resume");
		Path blobs = this.cache.resolve("models--org--tiny/blobs");
		String etag = etag(this.files.get("model.safetensors"), true);
		// The server sends 100,000 bytes and resets the connection; the reset may drop
		// a few kilobytes still in flight, so the partial file holds at most that much.
		long partial = Files.size(blobs.resolve(etag + ".incomplete"));
		assertThat(partial).isPositive().isLessThanOrEqualTo(100_000);
		Path snapshot = downloader(null).fetch("hf://org/tiny");
		assertThat(this.lastRangeStart).as("the second download resumes where the first stopped")
			.isEqualTo((int) partial);
		assertThat(Files.readAllBytes(snapshot.resolve("model.safetensors")))
			.isEqualTo(this.files.get("model.safetensors"));
		assertThat(blobs.resolve(etag + ".incomplete")).doesNotExist();
	}

	@Test
	void aWarmCacheDownloadsNothing() {
		downloader(null).fetch("hf://org/tiny@main");
		int first = this.downloads.get();
		downloader(null).fetch("hf://org/tiny@main");
		assertThat(first).as("the five files served").isEqualTo(5);
		assertThat(this.downloads.get()).isEqualTo(first);
	}

	@Test
	void gatedModelsNeedAToken() {
		assertThatThrownBy(() -> downloader(null).fetch("hf://org/gated")).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("org/gated is gated or private: set HF_TOKEN");
		assertThatThrownBy(() -> downloader("wrong").fetch("hf://org/gated")).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("refused the token");
		assertThat(downloader("secret").fetch("hf://org/gated")).exists();
	}

	@Test
	void missingReposAndFilesAre404s() {
		assertThatThrownBy(() -> downloader(null).fetch("hf://org/missing")).isInstanceOf(CheckpointException.class)
			.hasMessageContaining("org/missing was not found on the Hub (RepoNotFound)");
		assertThatThrownBy(() -> downloader(null).fetch("hf://org/tiny/model.gguf"))
			.isInstanceOf(CheckpointException.class)
			.hasMessageContaining("has no file model.gguf");
		assertThatThrownBy(() -> downloader(null).fetch("https://example.com/x"))
			.isInstanceOf(CheckpointException.class)
			.hasMessageContaining("not a Hub source");
	}

}

package dev.griffin.serve.hub;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.griffin.serve.weights.CheckpointException;

/**
 * Downloads the files of a checkpoint from the Hugging Face Hub into the standard Hugging
 * Face cache layout ({@code models--org--name/{blobs,snapshots,refs}}), so caches that
 * other tools filled are reused and ours serve them. Downloads resume from
 * {@code .incomplete} files, report progress in the log, and are checked against the
 * Hub's size and hash (SHA-256 for LFS files, the git blob hash otherwise) before they
 * become visible in a snapshot.
 * <p>
 * Sources: {@code hf://org/name} (a Hugging Face model directory),
 * {@code hf://org/name@revision}, and {@code hf://org/name[@revision]/file.gguf} (one
 * GGUF file).
 */
public final class HubDownloader {

	private static final Logger logger = LoggerFactory.getLogger(HubDownloader.class);

	private static final ObjectMapper JSON = new ObjectMapper();

	private static final Pattern SOURCE = Pattern
		.compile("hf://([\\w.-]+/[\\w.-]+)(?:@([\\w./-]+?))?(?:/([\\w./-]+\\.gguf))?");

	private static final List<String> OPTIONAL_FILES = List.of("generation_config.json", "tokenizer_config.json",
			"special_tokens_map.json", "chat_template.jinja", "chat_template.json");

	private final URI endpoint;

	private final Path cache;

	private final String token;

	private final HttpClient http;

	/**
	 * @param endpoint the Hub, normally https://huggingface.co (HF_ENDPOINT)
	 * @param cache the hub cache directory (HF_HUB_CACHE, or HF_HOME/hub)
	 * @param token an access token for gated and private models, or null
	 */
	public HubDownloader(URI endpoint, Path cache, String token) {
		this.endpoint = URI.create(endpoint.toString().replaceAll("/+$", ""));
		this.cache = cache;
		this.token = (token != null && !token.isBlank()) ? token.trim() : null;
		this.http = HttpClient.newBuilder()
			.followRedirects(HttpClient.Redirect.NORMAL)
			.connectTimeout(Duration.ofSeconds(30))
			.build();
	}

	/**
	 * A downloader configured as the Hugging Face tools are: HF_ENDPOINT,
	 * HF_HUB_CACHE/HF_HOME, HF_TOKEN.
	 */
	public static HubDownloader fromEnvironment() {
		String endpoint = Optional.ofNullable(System.getenv("HF_ENDPOINT")).orElse("https://huggingface.co");
		String hubCache = System.getenv("HF_HUB_CACHE");
		Path cache = (hubCache != null) ? Path.of(hubCache) : Path.of(Optional.ofNullable(System.getenv("HF_HOME"))
			.orElse(System.getProperty("user.home") + "/.cache/huggingface"), "hub");
		return new HubDownloader(URI.create(endpoint), cache, token());
	}

	/** HF_TOKEN, or the file HF_TOKEN_PATH names (a mounted secret), or none. */
	static String token() {
		String token = System.getenv("HF_TOKEN");
		if (token != null && !token.isBlank()) {
			return token;
		}
		String path = System.getenv("HF_TOKEN_PATH");
		if (path != null && Files.isReadable(Path.of(path))) {
			try {
				return Files.readString(Path.of(path)).trim();
			}
			catch (IOException ex) {
				throw new CheckpointException("cannot read the Hub token from " + path + ": " + ex.getMessage(), ex);
			}
		}
		return null;
	}

	public static boolean isHubSource(String source) {
		return source.startsWith("hf://");
	}

	/**
	 * Downloads what a source needs and returns the local path: a snapshot directory or a
	 * .gguf file.
	 */
	public Path fetch(String source) {
		Matcher matcher = SOURCE.matcher(source);
		if (!matcher.matches()) {
			throw new CheckpointException(
					"'%s' is not a Hub source: expected hf://org/name[@revision][/file.gguf]".formatted(source));
		}
		String repo = matcher.group(1);
		String revision = (matcher.group(2) != null) ? matcher.group(2) : "main";
		String gguf = matcher.group(3);
		RepoInfo info = repoInfo(repo, revision);
		List<String> files = new ArrayList<>();
		if (gguf != null) {
			if (!info.files().contains(gguf)) {
				throw new CheckpointException("%s@%s has no file %s".formatted(repo, revision, gguf));
			}
			files.add(gguf);
		}
		else {
			files.addAll(checkpointFiles(repo, info));
		}
		Path snapshot = repoDirectory(repo).resolve("snapshots").resolve(info.commit());
		for (String file : files) {
			download(repo, info.commit(), file, snapshot.resolve(file));
			if (file.equals("model.safetensors.index.json")) {
				for (String shard : shards(snapshot.resolve(file))) {
					download(repo, info.commit(), shard, snapshot.resolve(shard));
				}
			}
		}
		writeRef(repo, revision, info.commit());
		return (gguf != null) ? snapshot.resolve(gguf) : snapshot;
	}

	record RepoInfo(String commit, Set<String> files) {

	}

	private RepoInfo repoInfo(String repo, String revision) {
		URI uri = this.endpoint.resolve("/api/models/" + repo + "/revision/" + encode(revision));
		HttpResponse<String> response = send(HttpRequest.newBuilder(uri).GET(), HttpResponse.BodyHandlers.ofString(),
				repo, null);
		try {
			JsonNode root = JSON.readTree(response.body());
			Set<String> files = new LinkedHashSet<>();
			root.path("siblings").forEach((sibling) -> files.add(sibling.path("rfilename").asText()));
			String commit = root.path("sha").asText(null);
			if (commit == null) {
				throw new CheckpointException(
						"the Hub answered for %s@%s without a commit hash".formatted(repo, revision));
			}
			return new RepoInfo(commit, files);
		}
		catch (IOException ex) {
			throw new CheckpointException("the Hub's answer for %s is not JSON: %s".formatted(repo, ex.getMessage()),
					ex);
		}
	}

	private static List<String> checkpointFiles(String repo, RepoInfo info) {
		List<String> files = new ArrayList<>();
		for (String required : List.of("config.json", "tokenizer.json")) {
			if (!info.files().contains(required)) {
				throw new CheckpointException(
						"%s has no %s: it is not a Hugging Face model directory".formatted(repo, required));
			}
			files.add(required);
		}
		if (info.files().contains("model.safetensors.index.json")) {
			files.add("model.safetensors.index.json");
		}
		else if (info.files().contains("model.safetensors")) {
			files.add("model.safetensors");
		}
		else {
			throw new CheckpointException(
					"%s has neither model.safetensors nor model.safetensors.index.json".formatted(repo));
		}
		OPTIONAL_FILES.stream().filter(info.files()::contains).forEach(files::add);
		return files;
	}

	private static Set<String> shards(Path index) {
		try {
			Set<String> shards = new LinkedHashSet<>();
			JSON.readTree(index.toFile()).path("weight_map").forEach((shard) -> shards.add(shard.asText()));
			return shards;
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot read " + index + ": " + ex.getMessage(), ex);
		}
	}

	/** Downloads one file into blobs/ (resuming) and links it from the snapshot. */
	private void download(String repo, String commit, String file, Path target) {
		if (Files.exists(target)) {
			logger.info("{}: {} is cached", repo, file);
			return;
		}
		URI uri = this.endpoint.resolve("/" + repo + "/resolve/" + commit + "/" + file);
		HttpResponse<Void> head = send(HttpRequest.newBuilder(uri).method("HEAD", HttpRequest.BodyPublishers.noBody()),
				HttpResponse.BodyHandlers.discarding(), repo, file);
		String etag = head.headers()
			.firstValue("x-linked-etag")
			.or(() -> head.headers().firstValue("etag"))
			.map((value) -> value.replace("W/", "").replace("\"", ""))
			.orElseThrow(() -> new CheckpointException("the Hub sent no ETag for %s/%s".formatted(repo, file)));
		long size = head.headers()
			.firstValueAsLong("x-linked-size")
			.orElse(head.headers().firstValueAsLong("content-length").orElse(-1));
		Path blobs = repoDirectory(repo).resolve("blobs");
		Path blob = blobs.resolve(etag);
		try {
			Files.createDirectories(blobs);
			if (!Files.exists(blob)) {
				Path partial = blobs.resolve(etag + ".incomplete");
				fetchBlob(uri, repo, file, partial, size);
				verify(partial, etag, size, repo, file);
				Files.move(partial, blob, StandardCopyOption.ATOMIC_MOVE);
			}
			Files.createDirectories(target.getParent());
			Path relative = target.getParent().relativize(blob);
			try {
				Files.createSymbolicLink(target, relative);
			}
			catch (UnsupportedOperationException | IOException ex) {
				Files.copy(blob, target, StandardCopyOption.REPLACE_EXISTING);
			}
		}
		catch (IOException ex) {
			throw diskError(ex, file);
		}
	}

	private void fetchBlob(URI uri, String repo, String file, Path partial, long size) throws IOException {
		long have = Files.exists(partial) ? Files.size(partial) : 0;
		if (have > 0) {
			logger.info("{}: resuming {} at {} of {} bytes", repo, file, have, size);
		}
		else {
			logger.info("{}: downloading {} ({} bytes)", repo, file, size);
		}
		checkFreeSpace(partial.getParent(), size - have, file);
		HttpRequest.Builder request = HttpRequest.newBuilder(uri).GET();
		if (have > 0) {
			request.header("Range", "bytes=" + have + "-");
		}
		HttpResponse<InputStream> response = send(request, HttpResponse.BodyHandlers.ofInputStream(), repo, file);
		boolean append = have > 0 && response.statusCode() == 206;
		long written = append ? have : 0;
		long nextReport = written + Math.max(1, size / 10);
		try (InputStream in = response.body();
				OutputStream out = Files.newOutputStream(partial, StandardOpenOption.CREATE,
						append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING,
						StandardOpenOption.WRITE)) {
			byte[] buffer = new byte[1 << 16];
			int read;
			while ((read = in.read(buffer)) >= 0) {
				out.write(buffer, 0, read);
				written += read;
				if (size > 0 && written >= nextReport) {
					logger.info("{}: {} {}%", repo, file, written * 100 / size);
					nextReport += Math.max(1, size / 10);
				}
			}
		}
		catch (IOException ex) {
			throw new CheckpointException("%s: downloading %s broke off after %d of %d bytes (%s); run again to resume"
				.formatted(repo, file, written, size, ex.getMessage()), ex);
		}
	}

	private static void checkFreeSpace(Path directory, long needed, String file) throws IOException {
		FileStore store = Files.getFileStore(directory);
		if (needed > 0 && store.getUsableSpace() < needed) {
			throw new CheckpointException("not enough disk space for %s: %d bytes needed, %d free in %s".formatted(file,
					needed, store.getUsableSpace(), directory));
		}
	}

	private static CheckpointException diskError(IOException ex, String file) {
		String message = String.valueOf(ex.getMessage());
		if (message.contains("No space left")) {
			return new CheckpointException("disk full while writing " + file + ": " + message, ex);
		}
		return new CheckpointException("cannot write " + file + " to the model cache: " + message, ex);
	}

	/**
	 * Size, then hash: SHA-256 when the ETag is one (LFS files), the git blob SHA-1 when
	 * it has 40 digits.
	 */
	private static void verify(Path partial, String etag, long size, String repo, String file) throws IOException {
		long actual = Files.size(partial);
		if (size >= 0 && actual != size) {
			throw new CheckpointException(
					"%s: %s has %d bytes, the Hub announced %d".formatted(repo, file, actual, size));
		}
		String computed;
		if (etag.length() == 64) {
			computed = digest(partial, "SHA-256", null);
		}
		else if (etag.length() == 40) {
			computed = digest(partial, "SHA-1", ("blob " + actual + "\0").getBytes(StandardCharsets.UTF_8));
		}
		else {
			return;
		}
		if (!computed.equalsIgnoreCase(etag)) {
			Files.deleteIfExists(partial);
			throw new CheckpointException("%s: %s is corrupt (hash %s, expected %s); it was removed, run again"
				.formatted(repo, file, computed, etag));
		}
	}

	private static String digest(Path file, String algorithm, byte[] prefix) throws IOException {
		try {
			MessageDigest digest = MessageDigest.getInstance(algorithm);
			if (prefix != null) {
				digest.update(prefix);
			}
			try (InputStream in = Files.newInputStream(file)) {
				byte[] buffer = new byte[1 << 16];
				int read;
				while ((read = in.read(buffer)) >= 0) {
					digest.update(buffer, 0, read);
				}
			}
			return HexFormat.of().formatHex(digest.digest());
		}
		catch (NoSuchAlgorithmException ex) {
			throw new IllegalStateException(ex);
		}
	}

	private void writeRef(String repo, String revision, String commit) {
		if (revision.equals(commit)) {
			return;
		}
		try {
			Path ref = repoDirectory(repo).resolve("refs").resolve(revision);
			Files.createDirectories(ref.getParent());
			Files.writeString(ref, commit);
		}
		catch (IOException ex) {
			throw diskError(ex, "refs/" + revision);
		}
	}

	Path repoDirectory(String repo) {
		return this.cache.resolve("models--" + repo.replace("/", "--"));
	}

	private <T> HttpResponse<T> send(HttpRequest.Builder request, HttpResponse.BodyHandler<T> handler, String repo,
			String file) {
		if (this.token != null) {
			request.header("Authorization", "Bearer " + this.token);
		}
		request.header("User-Agent", "griffin-serve/0.1.0").timeout(Duration.ofMinutes(30));
		HttpResponse<T> response;
		try {
			response = this.http.send(request.build(), handler);
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot reach the Hub at %s: %s".formatted(this.endpoint, ex.getMessage()),
					ex);
		}
		catch (InterruptedException ex) {
			Thread.currentThread().interrupt();
			throw new CheckpointException("interrupted while talking to the Hub", ex);
		}
		int status = response.statusCode();
		String what = (file != null) ? repo + "/" + file : repo;
		if (status == 401 || status == 403) {
			throw new CheckpointException(((this.token == null)
					? "%s is gated or private: set HF_TOKEN (or HF_TOKEN_PATH to a mounted secret) to a token that has access"
					: "the Hub refused the token for %s (HTTP %d): accept the model's license or use a token with access")
				.formatted(what, status));
		}
		if (status == 404) {
			throw new CheckpointException("%s was not found on the Hub (%s)".formatted(what,
					response.headers().firstValue("x-error-code").orElse("HTTP 404")));
		}
		if (status >= 400) {
			throw new CheckpointException("the Hub answered HTTP %d for %s".formatted(status, what));
		}
		return response;
	}

	private static String encode(String revision) {
		return URLEncoder.encode(revision, StandardCharsets.UTF_8);
	}

}

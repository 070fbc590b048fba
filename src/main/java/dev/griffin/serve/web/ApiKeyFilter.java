package dev.griffin.serve.web;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.Principal;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

import org.springframework.core.Ordered;
import org.springframework.http.HttpHeaders;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Guards every route: the request-size limit, a canonical path, and
 * {@code Authorization: Bearer <key>} when API keys are configured.
 * <p>
 * The decision is made on the path the router will match. Spring routes the decoded path
 * with {@code ;} parameters removed, so a raw path that differs from its decoded form
 * ({@code /%76%31/completions}, {@code /v1;x/models}) could otherwise pass as something
 * else; such paths are refused outright, since no route of this service needs an encoded
 * or parameterised segment. With keys configured every path needs one except an explicit
 * allow-list: the probes, and the API documentation when the operator makes it public.
 * The accepted key is kept on the exchange (rate limits, cache tenant) and as its
 * principal (health details are shown to authenticated callers only).
 */
public class ApiKeyFilter implements WebFilter, Ordered {

	public static final String API_KEY_ATTRIBUTE = ApiKeyFilter.class.getName() + ".apiKey";

	/** Runs after CORS, so browser preflights are answered without a key. */
	public static final int ORDER = Ordered.HIGHEST_PRECEDENCE + 10;

	/**
	 * Segments of letters, digits and {@code - _ . ~}; no dot segments, no empty ones.
	 */
	private static final Pattern CANONICAL = Pattern.compile("(/(?!\\.{1,2}(/|$))[A-Za-z0-9._~-]+)*/?");

	private static final Set<String> PROBES = Set.of("/actuator/health/liveness", "/actuator/health/readiness");

	private static final List<String> DOCS = List.of("/swagger-ui.html", "/swagger-ui/", "/v3/api-docs",
			"/webjars/swagger-ui/");

	private final List<byte[]> keys;

	private final long maxRequestBytes;

	private final boolean publicDocs;

	public ApiKeyFilter(List<String> keys, long maxRequestBytes, boolean publicDocs) {
		this.keys = keys.stream().map((key) -> key.getBytes(StandardCharsets.UTF_8)).toList();
		this.maxRequestBytes = maxRequestBytes;
		this.publicDocs = publicDocs;
	}

	/** Whether the raw path is its own decoded, parameter-free form. */
	static boolean isCanonical(String rawPath) {
		return rawPath.isEmpty() || (rawPath.length() <= 2048 && CANONICAL.matcher(rawPath).matches());
	}

	/** Whether a canonical path is served without a key. */
	boolean isPublic(String path) {
		if (PROBES.contains(path)) {
			return true;
		}
		return this.publicDocs && DOCS.stream()
			.anyMatch((prefix) -> path.equals(prefix) || (prefix.endsWith("/") && path.startsWith(prefix))
					|| path.startsWith(prefix + "/"));
	}

	@Override
	public int getOrder() {
		return ORDER;
	}

	@Override
	public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
		String path = exchange.getRequest().getURI().getRawPath();
		if (path == null || !isCanonical(path)) {
			return Mono.error(new InvalidRequestException(null,
					"The request path must be plain: no ';' parameters, percent-encoding, dot or empty segments.",
					"invalid_path"));
		}
		long length = exchange.getRequest().getHeaders().getContentLength();
		if (length > this.maxRequestBytes) {
			return Mono.error(new RequestTooLargeException(length, this.maxRequestBytes));
		}
		if (this.keys.isEmpty()) {
			return chain.filter(exchange);
		}
		String key = presentedKey(exchange);
		if (key == null) {
			if (isPublic(path)) {
				return chain.filter(exchange);
			}
			return Mono
				.error(new AuthenticationException("Missing API key: send it as 'Authorization: Bearer <key>'."));
		}
		if (!isAccepted(key)) {
			return Mono.error(new AuthenticationException("Incorrect API key provided."));
		}
		exchange.getAttributes().put(API_KEY_ATTRIBUTE, key);
		Principal principal = new ApiKeyPrincipal(key);
		return chain.filter(exchange.mutate().principal(Mono.just(principal)).build());
	}

	private static String presentedKey(ServerWebExchange exchange) {
		String header = exchange.getRequest().getHeaders().getFirst(HttpHeaders.AUTHORIZATION);
		if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
			return null;
		}
		return header.substring(7).trim();
	}

	private boolean isAccepted(String key) {
		byte[] presented = key.getBytes(StandardCharsets.UTF_8);
		boolean valid = false;
		for (byte[] accepted : this.keys) {
			// constant time, so a key cannot be guessed byte by byte from response times
			valid |= MessageDigest.isEqual(accepted, presented);
		}
		return valid;
	}

	/** The caller an accepted key stands for; its name never reveals the key. */
	record ApiKeyPrincipal(String key) implements Principal {

		@Override
		public String getName() {
			return "api-key-" + Integer.toHexString(this.key.hashCode());
		}

		@Override
		public String toString() {
			return getName();
		}

	}

}

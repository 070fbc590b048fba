package dev.griffin.serve.web;

import java.security.MessageDigest;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.springframework.http.HttpHeaders;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Guards the model routes: the request-size limit always, and
 * {@code Authorization: Bearer <key>} when API keys are configured. The accepted key is
 * kept on the exchange for rate limiting and the expert cache's tenant salt.
 */
public class ApiKeyFilter implements WebFilter {

	public static final String API_KEY_ATTRIBUTE = ApiKeyFilter.class.getName() + ".apiKey";

	private final List<byte[]> keys;

	private final long maxRequestBytes;

	public ApiKeyFilter(List<String> keys, long maxRequestBytes) {
		this.keys = keys.stream().map((key) -> key.getBytes(StandardCharsets.UTF_8)).toList();
		this.maxRequestBytes = maxRequestBytes;
	}

	static boolean isModelRoute(String path) {
		return path.startsWith("/v1/") || path.equals("/tokenize") || path.equals("/detokenize");
	}

	@Override
	public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
		String path = exchange.getRequest().getPath().pathWithinApplication().value();
		if (!isModelRoute(path)) {
			return chain.filter(exchange);
		}
		long length = exchange.getRequest().getHeaders().getContentLength();
		if (length > this.maxRequestBytes) {
			return Mono.error(new RequestTooLargeException(length, this.maxRequestBytes));
		}
		if (this.keys.isEmpty()) {
			return chain.filter(exchange);
		}
		String header = exchange.getRequest().getHeaders().getFirst(HttpHeaders.AUTHORIZATION);
		if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
			return Mono
				.error(new AuthenticationException("Missing API key: send it as 'Authorization: Bearer <key>'."));
		}
		String key = header.substring(7).trim();
		byte[] presented = key.getBytes(StandardCharsets.UTF_8);
		boolean valid = false;
		for (byte[] accepted : this.keys) {
			// constant time, so a key cannot be guessed byte by byte from response times
			valid |= MessageDigest.isEqual(accepted, presented);
		}
		if (!valid) {
			return Mono.error(new AuthenticationException("Incorrect API key provided."));
		}
		exchange.getAttributes().put(API_KEY_ATTRIBUTE, key);
		return chain.filter(exchange);
	}

}

package dev.griffin.serve.web;

import java.nio.charset.StandardCharsets;
import java.time.Duration;

import io.github.resilience4j.bulkhead.BulkheadFullException;
import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import io.github.resilience4j.ratelimiter.RequestNotPermitted;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.annotation.Order;
import org.springframework.core.codec.DecodingException;
import org.springframework.core.io.buffer.DataBufferLimitException;
import org.springframework.http.HttpStatus;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.MediaType;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.stereotype.Component;
import org.springframework.web.server.MethodNotAllowedException;
import org.springframework.web.server.ResponseStatusException;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.ServerWebInputException;
import org.springframework.web.server.UnsupportedMediaTypeStatusException;
import org.springframework.web.server.WebExceptionHandler;
import reactor.core.publisher.Mono;
import tools.jackson.core.JacksonException;
import tools.jackson.core.exc.InputCoercionException;
import tools.jackson.core.exc.StreamReadException;
import tools.jackson.databind.DatabindException;
import tools.jackson.databind.exc.MismatchedInputException;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.json.JsonMapper;

import dev.griffin.serve.config.GriffinProperties;
import dev.griffin.serve.generation.ContextLengthExceededException;
import dev.griffin.serve.generation.GenerationTimeoutException;
import dev.griffin.serve.generation.InvalidParameterException;
import dev.griffin.serve.generation.ModelNotReadyException;
import dev.griffin.serve.web.ApiTypes.ErrorBody;
import dev.griffin.serve.web.ApiTypes.ErrorResponse;

/**
 * Every error the service returns, in OpenAI's envelope {@code {"error": {message, type,
 * param, code}}} with the matching status: 400, 401, 404, 413, 429 (with Retry-After),
 * 503, 504, 500.
 */
@Component
@Order(-2)
public class OpenAiErrorHandler implements WebExceptionHandler {

	private static final Logger logger = LoggerFactory.getLogger(OpenAiErrorHandler.class);

	private static final ObjectMapper JSON = JsonMapper.builder().build();

	private final long maxRequestBytes;

	OpenAiErrorHandler(GriffinProperties properties) {
		this.maxRequestBytes = properties.security().maxRequestSize().toBytes();
	}

	/** An error, classified. */
	record Classified(HttpStatus status, ErrorBody body, Duration retryAfter) {

	}

	static Classified classify(Throwable error) {
		if (error instanceof InvalidRequestException e) {
			return of(HttpStatus.BAD_REQUEST, e.getMessage(), "invalid_request_error", e.param(), e.code());
		}
		if (error instanceof InvalidParameterException e) {
			return of(HttpStatus.BAD_REQUEST, e.getMessage(), "invalid_request_error", e.parameter(), null);
		}
		if (error instanceof ContextLengthExceededException e) {
			return of(HttpStatus.BAD_REQUEST, e.getMessage(), "invalid_request_error", "messages",
					"context_length_exceeded");
		}
		if (error instanceof UnknownModelException e) {
			return of(HttpStatus.NOT_FOUND, e.getMessage(), "invalid_request_error", "model", "model_not_found");
		}
		if (error instanceof AuthenticationException e) {
			return of(HttpStatus.UNAUTHORIZED, e.getMessage(), "authentication_error", null, "invalid_api_key");
		}
		if (error instanceof RequestTooLargeException e) {
			return of(HttpStatus.PAYLOAD_TOO_LARGE, e.getMessage(), "invalid_request_error", null, "request_too_large");
		}
		if (error instanceof RequestNotPermitted) {
			return new Classified(HttpStatus.TOO_MANY_REQUESTS,
					new ErrorBody("Rate limit reached for this API key; retry after the Retry-After interval.",
							"rate_limit_error", null, "rate_limit_exceeded"),
					Duration.ofSeconds(1));
		}
		if (error instanceof BulkheadFullException) {
			return new Classified(HttpStatus.TOO_MANY_REQUESTS,
					new ErrorBody(
							"The server is busy: the generation queue is full. Retry after the Retry-After interval.",
							"rate_limit_error", null, "queue_full"),
					Duration.ofSeconds(1));
		}
		if (error instanceof ModelNotReadyException e) {
			return new Classified(HttpStatus.SERVICE_UNAVAILABLE,
					new ErrorBody(e.getMessage(), "server_error", null, "model_not_ready"), Duration.ofSeconds(5));
		}
		if (error instanceof CallNotPermittedException) {
			return new Classified(HttpStatus.SERVICE_UNAVAILABLE,
					new ErrorBody("The engine failed repeatedly; requests are paused while it recovers.",
							"server_error", null, "circuit_open"),
					Duration.ofSeconds(30));
		}
		if (error instanceof GenerationTimeoutException e) {
			return of(HttpStatus.GATEWAY_TIMEOUT, e.getMessage(), "timeout_error", null, "generation_timeout");
		}
		if (error instanceof DataBufferLimitException) {
			return of(HttpStatus.PAYLOAD_TOO_LARGE, "The request body is larger than the server accepts.",
					"invalid_request_error", null, "request_too_large");
		}
		if (error instanceof ServerWebInputException e) {
			return input(e);
		}
		if (error instanceof UnsupportedMediaTypeStatusException e) {
			return of(HttpStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json.",
					"invalid_request_error", null, null);
		}
		if (error instanceof MethodNotAllowedException e) {
			return of(HttpStatus.METHOD_NOT_ALLOWED, e.getReason(), "invalid_request_error", null, null);
		}
		if (error instanceof ResponseStatusException e) {
			HttpStatus status = HttpStatus.resolve(e.getStatusCode().value());
			status = (status != null) ? status : HttpStatus.INTERNAL_SERVER_ERROR;
			String message = (status == HttpStatus.NOT_FOUND) ? "Unknown path." : String.valueOf(e.getReason());
			return of(status, message, status.is4xxClientError() ? "invalid_request_error" : "server_error", null,
					null);
		}
		if (error instanceof IllegalArgumentException e) {
			// a rule without a field of its own; its text may name internals, so the
			// client gets a generic message and the log the detail
			logger.warn("invalid request: {}", e.toString());
			return of(HttpStatus.BAD_REQUEST, "The request is invalid.", "invalid_request_error", null, null);
		}
		return of(HttpStatus.INTERNAL_SERVER_ERROR, "The server had an error while processing your request.",
				"server_error", null, null);
	}

	/** Body decoding errors: name the field that has the wrong type. */
	private static Classified input(ServerWebInputException e) {
		Throwable cause = e;
		while (cause != null && !(cause instanceof JacksonException) && cause.getCause() != cause) {
			cause = cause.getCause();
		}
		// a wrong type (DatabindException) or a number out of its field's range
		// (InputCoercionException): both carry the field's path
		if ((cause instanceof DatabindException || cause instanceof InputCoercionException)
				&& cause instanceof JacksonException located && !located.getPath().isEmpty()) {
			StringBuilder path = new StringBuilder();
			for (var reference : located.getPath()) {
				if (reference.getPropertyName() != null) {
					path.append(path.isEmpty() ? "" : ".").append(reference.getPropertyName());
				}
				else if (reference.getIndex() >= 0) {
					path.append('[').append(reference.getIndex()).append(']');
				}
			}
			// our words, not Jackson's (which name Java types and echo input)
			return of(HttpStatus.BAD_REQUEST, "Invalid value for '%s': expected %s.".formatted(path, expected(located)),
					"invalid_request_error", path.toString(), "invalid_type");
		}
		if (cause instanceof JacksonException jackson) {
			String where = (jackson.getLocation() != null && jackson.getLocation().getLineNr() > 0)
					? " (line %d, column %d)".formatted(jackson.getLocation().getLineNr(),
							jackson.getLocation().getColumnNr())
					: "";
			String twice = duplicated(jackson);
			if (twice != null) {
				boolean named = !twice.isEmpty();
				return of(HttpStatus.BAD_REQUEST,
						"The request body names %s twice in one object%s."
							.formatted(named ? "'" + twice + "'" : "a field", where),
						"invalid_request_error", named ? twice : null, "duplicate_field");
			}
			return of(HttpStatus.BAD_REQUEST, "The request body is not valid JSON" + where + ".",
					"invalid_request_error", null, "invalid_json");
		}
		Throwable root = e.getMostSpecificCause();
		if (root instanceof DecodingException || e.getReason() == null) {
			return of(HttpStatus.BAD_REQUEST, "The request body is missing or not valid JSON.", "invalid_request_error",
					null, "invalid_json");
		}
		return of(HttpStatus.BAD_REQUEST, e.getReason(), "invalid_request_error", null, null);
	}

	/**
	 * The field an object names twice (refused by {@code JsonConfiguration}): its name,
	 * or empty when the name is not short printable ASCII (it is the client's text,
	 * echoed in the error); null for any other parse error.
	 */
	private static String duplicated(JacksonException error) {
		String message = error.getOriginalMessage();
		if (!(error instanceof StreamReadException) || message == null || !message.startsWith(DUPLICATE_PREFIX)) {
			return null;
		}
		int end = message.indexOf('"', DUPLICATE_PREFIX.length());
		String name = (end < 0) ? "" : message.substring(DUPLICATE_PREFIX.length(), end);
		return (name.length() <= 64 && name.chars().allMatch((c) -> c >= 0x20 && c < 0x7f)) ? name : "";
	}

	/** How Jackson's parser words a duplicate field. */
	private static final String DUPLICATE_PREFIX = "Duplicate Object property \"";

	/** The JSON type a field needs, in the API's words. */
	private static String expected(JacksonException error) {
		Class<?> type = (error instanceof MismatchedInputException mismatch) ? mismatch.getTargetType()
				: (error instanceof InputCoercionException coercion) ? coercion.getTargetType() : null;
		if (type == null) {
			return "a value of the documented type";
		}
		if (type == Integer.class || type == int.class || type == Long.class || type == long.class) {
			return "an integer in range";
		}
		if (Number.class.isAssignableFrom(type) || type == double.class || type == float.class) {
			return "a number";
		}
		if (type == Boolean.class || type == boolean.class) {
			return "a boolean";
		}
		if (type == String.class) {
			return "a string";
		}
		if (java.util.Collection.class.isAssignableFrom(type) || type.isArray()) {
			return "an array";
		}
		return "an object";
	}

	private static Classified of(HttpStatus status, String message, String type, String param, String code) {
		return new Classified(status, new ErrorBody(message, type, param, code), null);
	}

	/** The envelope of an error sent inside an event stream. */
	static ErrorResponse envelope(Throwable error) {
		Classified classified = classify(error);
		if (classified.status().is5xxServerError() && classified.status() != HttpStatus.SERVICE_UNAVAILABLE) {
			logger.error("error after the stream began: {}", error.toString());
		}
		return new ErrorResponse(classified.body());
	}

	@Override
	public Mono<Void> handle(ServerWebExchange exchange, Throwable error) {
		Classified classified = classify(error);
		if (classified.status() == HttpStatus.INTERNAL_SERVER_ERROR) {
			logger.error("request {} {} failed", exchange.getRequest().getMethod(), exchange.getRequest().getPath(),
					error);
		}
		ServerHttpResponse response = exchange.getResponse();
		if (response.isCommitted()) {
			return Mono.error(error);
		}
		response.setStatusCode(HttpStatusCode.valueOf(classified.status().value()));
		response.getHeaders().setContentType(MediaType.APPLICATION_JSON);
		if (classified.retryAfter() != null) {
			response.getHeaders().set("Retry-After", String.valueOf(classified.retryAfter().toSeconds()));
		}
		byte[] bytes;
		try {
			bytes = JSON.writeValueAsBytes(new ErrorResponse(classified.body()));
		}
		catch (JacksonException ex) {
			bytes = "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}"
				.getBytes(StandardCharsets.UTF_8);
		}
		byte[] body = bytes;
		return RequestBodies.settle(exchange, this.maxRequestBytes)
			.then(Mono.defer(() -> response.writeWith(Mono.just(response.bufferFactory().wrap(body)))));
	}

}

package dev.griffin.serve.web;

import java.time.Duration;
import java.util.function.Supplier;

import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;
import tools.jackson.databind.json.JsonMapper;

import dev.griffin.serve.config.GriffinProperties;
import dev.griffin.serve.generation.StreamStalledException;

/**
 * The one Server-Sent Events adapter of the streaming endpoints, framed as OpenAI, vLLM,
 * TGI and llama.cpp's server frame it: every chunk as a {@code data: {json}} line (with
 * the space after the colon that hand-written clients split on), the usage chunk when
 * asked, then {@code data: [DONE]}. While the stream waits, {@code :keep-alive} comments;
 * an error after the first byte becomes a {@code data: {"error": ...}} event followed by
 * [DONE].
 */
@Component
final class SseStream {

	static final String DONE = "[DONE]";

	private final JsonMapper json;

	private final Duration keepAlive;

	@Autowired
	SseStream(JsonMapper json, GriffinProperties properties) {
		this(json, properties.generation().keepAlive());
	}

	SseStream(JsonMapper json, Duration keepAlive) {
		this.json = json;
		this.keepAlive = keepAlive;
	}

	/**
	 * The response streaming {@code chunks}.
	 * @param usage the usage chunk, asked for once every chunk is sent; null when the
	 * client did not ask for usage
	 */
	ResponseEntity<Object> respond(Flux<?> chunks, Supplier<?> usage) {
		return ResponseEntity.ok()
			.contentType(MediaType.TEXT_EVENT_STREAM)
			.header("Cache-Control", "no-cache")
			.header("X-Accel-Buffering", "no")
			.body(events(chunks, usage));
	}

	/** The events of a stream, keep-alives included (what {@link #respond} sends). */
	Flux<ServerSentEvent<String>> events(Flux<?> chunks, Supplier<?> usage) {
		Flux<ServerSentEvent<String>> data = chunks.map(this::data)
			.concatWith(Flux.defer(() -> (usage != null) ? Flux.just(data(usage.get())) : Flux.empty()))
			// a stalled reader would not read an error event either: its
			// connection is dropped
			.onErrorResume((error) -> !(error instanceof StreamStalledException),
					(error) -> Flux.just(data(OpenAiErrorHandler.envelope(error))));
		Sinks.Empty<Void> done = Sinks.empty();
		// a reader that is behind misses pings rather than failing the stream
		Flux<ServerSentEvent<String>> pings = Flux.interval(this.keepAlive)
			.onBackpressureDrop()
			.map((tick) -> ServerSentEvent.<String>builder().comment("keep-alive").build())
			.takeUntilOther(done.asMono());
		// [DONE] follows the merge, so no ping that races the last chunk
		// can come after it
		return Flux.merge(data.doOnTerminate(done::tryEmitEmpty).doOnCancel(done::tryEmitEmpty), pings)
			.concatWith(Flux.just(line(DONE)));
	}

	private ServerSentEvent<String> data(Object chunk) {
		return line(this.json.writeValueAsString(chunk));
	}

	/**
	 * One {@code data: } line: Spring writes a String as it is after {@code data:}, so
	 * the leading space makes the conventional form (SSE readers drop one space after the
	 * colon). Compact JSON has no line breaks.
	 */
	private static ServerSentEvent<String> line(String text) {
		return ServerSentEvent.builder(" " + text).build();
	}

}

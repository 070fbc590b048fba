package dev.griffin.serve.web;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

import org.junit.jupiter.api.Test;
import org.springframework.core.ResolvableType;
import org.springframework.http.MediaType;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.http.codec.ServerSentEventHttpMessageWriter;
import org.springframework.mock.http.server.reactive.MockServerHttpResponse;
import reactor.core.publisher.Flux;
import tools.jackson.databind.json.JsonMapper;

import dev.griffin.serve.generation.GenerationTimeoutException;
import dev.griffin.serve.generation.StreamStalledException;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The bytes of an event stream, as Spring's writer puts them on the wire. */
class SseStreamTests {

	private record Chunk(String text) {

	}

	private static String wire(Flux<?> chunks, Supplier<?> usage, Duration keepAlive) {
		SseStream stream = new SseStream(JsonMapper.builder().build(), keepAlive);
		MockServerHttpResponse response = new MockServerHttpResponse();
		new ServerSentEventHttpMessageWriter()
			.write(stream.events(chunks, usage),
					ResolvableType.forClassWithGenerics(ServerSentEvent.class, String.class),
					MediaType.TEXT_EVENT_STREAM, response, Map.of())
			.block(Duration.ofSeconds(10));
		return response.getBodyAsString().block(Duration.ofSeconds(10));
	}

	@Test
	void chunksThenUsageThenDoneEachAsADataLineWithASpace() {
		String body = wire(Flux.just(new Chunk("a"), new Chunk("b\nc")), () -> Map.of("usage", 2),
				Duration.ofMinutes(1));
		assertThat(body).isEqualTo("data: {\"text\":\"a\"}\n\n" + "data: {\"text\":\"b\\nc\"}\n\n"
				+ "data: {\"usage\":2}\n\n" + "data: [DONE]\n\n");
	}

	@Test
	void noUsageChunkUnlessAsked() {
		assertThat(wire(Flux.just(new Chunk("a")), null, Duration.ofMinutes(1)))
			.isEqualTo("data: {\"text\":\"a\"}\n\n" + "data: [DONE]\n\n");
	}

	@Test
	void anErrorAfterTheFirstChunkIsAnErrorEventThenDone() {
		String body = wire(Flux.concat(Flux.just(new Chunk("a")), Flux.error(new GenerationTimeoutException())),
				() -> Map.of("usage", 1), Duration.ofMinutes(1));
		List<String> lines = body.lines().filter((line) -> !line.isEmpty()).toList();
		assertThat(lines).hasSize(3);
		assertThat(lines.get(0)).isEqualTo("data: {\"text\":\"a\"}");
		assertThat(lines.get(1)).startsWith("data: {\"error\":{").contains("\"code\":\"generation_timeout\"");
		assertThat(lines.get(2)).isEqualTo("data: [DONE]");
	}

	@Test
	void aStalledReaderGetsNoMoreEvents() {
		assertThatThrownBy(
				() -> wire(Flux.error(new StreamStalledException(Duration.ofSeconds(30))), null, Duration.ofMinutes(1)))
			.isInstanceOf(StreamStalledException.class);
	}

	@Test
	void keepAlivesAreCommentsWhileTheStreamWaits() {
		String body = wire(Flux.just(new Chunk("late")).delayElements(Duration.ofMillis(350)), null,
				Duration.ofMillis(100));
		assertThat(body).contains(":keep-alive\n\n")
			.contains("data: {\"text\":\"late\"}\n\n")
			.endsWith("data: [DONE]\n\n");
	}

	@Test
	void nothingFollowsDoneEvenWhenPingsRaceTheLastChunk() {
		for (int run = 0; run < 100; run++) {
			String body = wire(Flux.range(0, 5).map((i) -> new Chunk("t" + i)).delayElements(Duration.ofMillis(1)),
					null, Duration.ofMillis(1));
			assertThat(body).contains("data: {\"text\":\"t4\"}\n\n").endsWith("data: [DONE]\n\n");
		}
	}

}

package dev.griffin.serve.web;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.MediaType;

import dev.griffin.serve.GriffinServeApplication;
import dev.griffin.serve.generation.ModelService;
import dev.griffin.serve.generation.NativeMemoryIT;

import static dev.griffin.serve.web.ServiceSupport.completion;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * A client that drops mid-stream stops its generation (the cancelled counter proves it),
 * the next requests are served normally, and 200 such drops leave no native memory
 * growth.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1", "griffin.generation.queue-capacity=4" })
class DisconnectIT extends ServiceTestBase {

	@Autowired
	ModelService models;

	private double cancelled() {
		return ServiceSupport.metric(ServiceSupport.getText(this.client, "/actuator/prometheus"),
				"griffin_requests_cancelled_total");
	}

	/** Reads the first few chunks of a long stream, then hangs up. */
	private void dropMidStream(int chunks) {
		dropMidStream("Write a long essay about rivers.", chunks);
	}

	/** {@link #dropMidStream(int)} with the given prompt (or prompts). */
	private void dropMidStream(Object prompt, int chunks) {
		Map<String, Object> request = completion("x", 1000);
		request.put("prompt", prompt);
		request.put("stream", true);
		request.put("ignore_eos", true);
		request.put("griffin", Map.of("cache", false));
		String received = this.client.post()
			.uri("/v1/completions")
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue(request)
			.exchange()
			.returnResult(String.class)
			.getResponseBody()
			.take(chunks)
			.blockLast(Duration.ofSeconds(60));
		assertThat(received).isNotNull();
	}

	private void awaitCancelled(double atLeast) throws InterruptedException {
		long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
		while (cancelled() < atLeast && System.nanoTime() < deadline) {
			Thread.sleep(50);
		}
		assertThat(cancelled()).isGreaterThanOrEqualTo(atLeast);
	}

	@Test
	void droppedStreamsStopGeneratingAndFreeTheirMemory() throws Exception {
		double before = cancelled();
		long start = System.nanoTime();
		dropMidStream(3);
		awaitCancelled(before + 1);
		// 1000 tokens would take over 20 s: cancellation took effect within a few decode
		// steps
		assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(15));
		ServiceSupport.post(this.client, "/v1/completions", completion("After the drop", 4), 200);

		for (int i = 0; i < 20; i++) {
			dropMidStream(2);
		}
		awaitCancelled(before + 21);
		int liveBefore = NativeMemoryIT.liveArrays(this.models.model().dense().manager());
		// Every dropped stream allocated and freed its KV cache and gathered
		// experts (tens to hundreds of MB). malloc's high-water mark rises for a
		// few windows in a young process and then stays; a leak of either would
		// add GBs in every window. Windows of 60 drops run until one grows less
		// than 32 MB, at most 6.
		List<Long> rss = new ArrayList<>(List.of(residentBytes()));
		int dropped = 21;
		long growth = Long.MAX_VALUE;
		for (int window = 1; window <= 6 && growth >= (32L << 20); window++) {
			for (int i = 0; i < 60; i++) {
				dropMidStream(2);
			}
			dropped += 60;
			awaitCancelled(before + dropped);
			rss.add(residentBytes());
			growth = rss.get(window) - rss.get(window - 1);
		}
		System.out.println("RSS after each window of 60 dropped streams, MB: "
				+ rss.stream().map((bytes) -> "%.1f".formatted(bytes / 1e6)).toList());
		assertThat(NativeMemoryIT.liveArrays(this.models.model().dense().manager()))
			.as("live NDArrays after %d more dropped streams", dropped - 21)
			.isEqualTo(liveBefore);
		assertThat(growth).as("resident memory growth over the last 60 drops (bytes)").isLessThan(32L << 20);
		ServiceSupport.post(this.client, "/v1/completions", completion("Still serving", 4), 200);
		this.client.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk().expectBody(Void.class);
	}

	/**
	 * A dropped stream of several prompts ends every prompt's job, running or queued, and
	 * returns the request's permits: more such drops than the server holds requests (one
	 * decoding, four queued) leave it serving.
	 */
	@Test
	void droppedStreamsOfSeveralPromptsReturnTheirPermits() throws Exception {
		for (int i = 0; i < 8; i++) {
			dropMidStream(List.of("Write a long essay about rivers.", "Write a long essay about lakes.",
					"Write a long essay about seas."), 2);
		}
		// each drop's jobs end within a few steps; a request that kept its permits would
		// hold one of the five slots for good, and 429s would never stop
		long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
		HttpStatusCode status;
		do {
			Thread.sleep(100);
			status = this.client.post()
				.uri("/v1/completions")
				.contentType(MediaType.APPLICATION_JSON)
				.bodyValue(completion("After the drops", 4))
				.exchange()
				.expectBody(String.class)
				.returnResult()
				.getStatus();
		}
		while (status.value() == 429 && System.nanoTime() < deadline);
		assertThat(status.value()).isEqualTo(200);
		for (int i = 0; i < 5; i++) {
			ServiceSupport.post(this.client, "/v1/completions", completion("Still serving " + i, 2), 200);
		}
	}

	static long residentBytes() throws IOException {
		String[] statm = Files.readString(Path.of("/proc/self/statm")).trim().split("\\s+");
		return Long.parseLong(statm[1]) * 4096;
	}

}

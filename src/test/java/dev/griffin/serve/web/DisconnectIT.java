package dev.griffin.serve.web;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
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

	private static final Pattern CANCELLED = Pattern
		.compile("(?m)^griffin_requests_cancelled_total\\{[^}]*\\} ([0-9.]+)");

	@Autowired
	ModelService models;

	private double cancelled() {
		String metrics = ServiceSupport.prometheus(this.client);
		Matcher matcher = CANCELLED.matcher(metrics);
		assertThat(matcher.find()).as("cancelled counter exported").isTrue();
		return Double.parseDouble(matcher.group(1));
	}

	/** Reads the first few chunks of a long stream, then hangs up. */
	private void dropMidStream(int chunks) {
		Map<String, Object> request = completion("Write a long essay about rivers.", 1000);
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
		long[] rss = new long[4];
		rss[0] = residentBytes();
		for (int window = 1; window <= 3; window++) {
			for (int i = 0; i < 60; i++) {
				dropMidStream(2);
			}
			awaitCancelled(before + 21 + 60 * window);
			rss[window] = residentBytes();
		}
		System.out.printf("RSS over 3 x 60 dropped streams: %.1f -> %.1f -> %.1f -> %.1f MB%n", rss[0] / 1e6,
				rss[1] / 1e6, rss[2] / 1e6, rss[3] / 1e6);
		assertThat(NativeMemoryIT.liveArrays(this.models.model().dense().manager()))
			.as("live NDArrays after 180 more dropped streams")
			.isEqualTo(liveBefore);
		// allocator caches may settle during the first window; after that, no trend
		assertThat(rss[3] - rss[1]).as("resident memory growth over the last 120 drops (bytes)").isLessThan(32L << 20);
		ServiceSupport.post(this.client, "/v1/completions", completion("Still serving", 4), 200);
		this.client.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk();
	}

	static long residentBytes() throws IOException {
		String[] statm = Files.readString(Path.of("/proc/self/statm")).trim().split("\\s+");
		return Long.parseLong(statm[1]) * 4096;
	}

}

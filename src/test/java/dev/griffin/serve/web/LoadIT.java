package dev.griffin.serve.web;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;

import dev.griffin.serve.GriffinServeApplication;

import static dev.griffin.serve.web.ServiceSupport.completion;
import static dev.griffin.serve.web.ServiceSupport.events;
import static dev.griffin.serve.web.ServiceSupport.json;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * 16 concurrent streaming clients x 2 requests each all complete with no 5xx, and their
 * greedy outputs equal the same requests made one at a time. The engine decodes up to 8
 * sequences in one batch, dense and GRIFFIN ones together, joining and leaving as
 * requests start and end.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=8", "griffin.generation.queue-capacity=32" })
class LoadIT extends ServiceTestBase {

	private static Map<String, Object> request(int clientIndex, int requestIndex) {
		Map<String, Object> request = completion("Client %d asks question %d: what is %d plus %d?"
			.formatted(clientIndex, requestIndex, clientIndex, requestIndex), 6);
		request.put("stream", true);
		request.put("griffin", Map.of("density", (clientIndex % 2 == 1) ? 1.0 : 0.5));
		return request;
	}

	private String streamedText(Map<String, Object> request) {
		StringBuilder text = new StringBuilder();
		List<String> data = events(this.client, "/v1/completions", request);
		assertThat(data.get(data.size() - 1)).isEqualTo("[DONE]");
		for (String event : data.subList(0, data.size() - 1)) {
			JsonNode chunk = json(event);
			assertThat(chunk.has("error")).as("no error events: %s", event).isFalse();
			text.append(chunk.get("choices").get(0).get("text").asText());
		}
		return text.toString();
	}

	@Test
	void concurrentStreamsMatchSequentialOnes() throws Exception {
		Map<String, String> concurrent = new ConcurrentHashMap<>();
		ExecutorService clients = Executors.newFixedThreadPool(16);
		List<Future<?>> futures = new ArrayList<>();
		for (int c = 0; c < 16; c++) {
			int clientIndex = c;
			futures.add(clients.submit(() -> {
				for (int r = 0; r < 2; r++) {
					concurrent.put(clientIndex + "/" + r, streamedText(request(clientIndex, r)));
				}
			}));
		}
		for (Future<?> future : futures) {
			future.get(10, TimeUnit.MINUTES);
		}
		clients.shutdown();
		assertThat(concurrent).hasSize(32);
		for (int c = 0; c < 16; c++) {
			for (int r = 0; r < 2; r++) {
				Map<String, Object> request = request(c, r);
				request.put("griffin", Map.of("density", (c % 2 == 1) ? 1.0 : 0.5, "cache", false));
				assertThat(streamedText(request)).as("client %d request %d", c, r)
					.isEqualTo(concurrent.get(c + "/" + r));
			}
		}
	}

}

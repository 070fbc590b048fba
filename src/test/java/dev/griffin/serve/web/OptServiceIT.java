package dev.griffin.serve.web;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.GriffinServeApplication;

import static dev.griffin.serve.web.ServiceSupport.post;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * An OPT checkpoint served: the tiny random OPT fixture with a byte-level tokenizer (one
 * token per byte, so token ids and bytes are the same numbers). A greedy completion of
 * the fixture's prompt, dense and with GRIFFIN 0.5, is transformers' continuation of it
 * ({@code tiny-opt/reference.json}), through the whole server.
 */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1", "griffin.model.id=tiny-opt" })
class OptServiceIT extends ServiceTestBase {

	private static final JsonNode REFERENCE = Fixtures.json("tiny-opt/reference.json");

	@DynamicPropertySource
	static void model(DynamicPropertyRegistry registry) {
		registry.add("griffin.model.path", OptServiceIT::modelDirectory);
	}

	/** The fixture's files and a byte-level tokenizer, in a directory of their own. */
	private static String modelDirectory() {
		try {
			Path directory = Files.createTempDirectory("tiny-opt");
			try (Stream<Path> files = Files.list(Fixtures.path("tiny-opt"))) {
				for (Path file : files.toList()) {
					Files.copy(file, directory.resolve(file.getFileName()));
				}
			}
			Fixtures.byteTokenizer(directory).close();
			return directory.toString();
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
	}

	/** The text of byte-level token ids. */
	private static String text(JsonNode ids) {
		byte[] bytes = new byte[ids.size()];
		for (int i = 0; i < bytes.length; i++) {
			bytes[i] = (byte) ids.get(i).asInt();
		}
		return new String(bytes, StandardCharsets.UTF_8);
	}

	private static Map<String, Object> completion(Map<String, Object> griffin) {
		Map<String, Object> body = new HashMap<>(
				Map.of("model", "tiny-opt", "prompt", Fixtures.ints(REFERENCE.get("prompt")), "max_tokens",
						REFERENCE.get("greedy").size(), "temperature", 0));
		if (griffin != null) {
			body.put("griffin", griffin);
		}
		return body;
	}

	@Test
	void greedyCompletionsAreTransformers() {
		JsonNode dense = post(this.client, "/v1/completions", completion(null), 200);
		assertThat(dense.at("/usage/prompt_tokens").asInt()).isEqualTo(REFERENCE.get("prompt").size());
		assertThat(dense.at("/usage/completion_tokens").asInt()).isEqualTo(REFERENCE.get("greedy").size());
		// bytes above 127 that form no UTF-8 character read as U+FFFD; the ASCII ones
		// (':', newlines, 'L') pin the rest of the sequence
		assertThat(dense.at("/choices/0/text").asText()).isEqualTo(text(REFERENCE.get("greedy")));

		JsonNode griffin = post(this.client, "/v1/completions",
				completion(Map.of("method", "topk", "density", REFERENCE.get("griffinDensity").asDouble())), 200);
		assertThat(griffin.at("/griffin/density").asDouble()).isEqualTo(0.5);
		assertThat(griffin.at("/choices/0/text").asText()).isEqualTo(text(REFERENCE.get("griffinGreedy")));
	}

}

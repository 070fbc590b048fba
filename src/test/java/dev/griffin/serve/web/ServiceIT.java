package dev.griffin.serve.web;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.TestPropertySource;
import org.springframework.http.MediaType;

import dev.griffin.serve.GriffinServeApplication;
import dev.griffin.serve.griffin.SelectionMethod;

import static dev.griffin.serve.web.ServiceSupport.assertError;
import static dev.griffin.serve.web.ServiceSupport.chat;
import static dev.griffin.serve.web.ServiceSupport.completion;
import static dev.griffin.serve.web.ServiceSupport.events;
import static dev.griffin.serve.web.ServiceSupport.json;
import static dev.griffin.serve.web.ServiceSupport.post;
import static org.assertj.core.api.Assertions.assertThat;

/** Every endpoint, streaming and not, and the error statuses, on the default model. */
// Each context holds a loaded model: close it after the class instead of caching it.
@DirtiesContext
// the default kernel plan: calibrated at load
@TestPropertySource(properties = { "griffin.model.decode-kernel=auto", "griffin.model.prefill-kernel=auto" })
@SpringBootTest(classes = GriffinServeApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
		properties = { "griffin.generation.workers=1", "griffin.generation.queue-capacity=8",
				"griffin.generation.max-tokens-limit=10000" })
class ServiceIT extends ServiceTestBase {

	@Test
	void listsTheModel() {
		JsonNode models = json(this.client.get()
			.uri("/v1/models")
			.exchange()
			.expectStatus()
			.isOk()
			.expectBody(String.class)
			.returnResult()
			.getResponseBody());
		assertThat(models.get("object").asText()).isEqualTo("list");
		assertThat(models.get("data").get(0).get("id").asText()).isEqualTo(ServiceSupport.MODEL);
	}

	@Test
	void completionStreamsWhatItReturnsWhole() {
		Map<String, Object> request = completion("The capital of France is", 8);
		JsonNode whole = post(this.client, "/v1/completions", request, 200);
		assertThat(whole.get("object").asText()).isEqualTo("text_completion");
		JsonNode choice = whole.get("choices").get(0);
		assertThat(choice.get("finish_reason").asText()).isIn("stop", "length");
		assertThat(whole.get("usage").get("prompt_tokens").asInt()).isEqualTo(5);
		// the server's default rule: a prompt of 5 tokens runs dense, and the report says
		// so
		assertThat(whole.get("griffin").get("density").asDouble()).as("the server default").isEqualTo(1.0);
		assertThat(whole.get("griffin").get("method").asText()).isEqualTo("dense");
		JsonNode longer = post(this.client, "/v1/completions",
				completion("The river flows past the old mill and on to the sea. ".repeat(30), 1), 200);
		assertThat(longer.get("usage").get("prompt_tokens").asInt()).isGreaterThanOrEqualTo(256);
		assertThat(longer.get("griffin").get("density").asDouble()).as("the server default, 256 tokens or more")
			.isEqualTo(0.75);
		assertThat(longer.get("griffin").get("method").asText()).isEqualTo("delayed");

		request.put("stream", true);
		request.put("stream_options", Map.of("include_usage", true));
		List<String> data = events(this.client, "/v1/completions", request);
		assertThat(data.get(data.size() - 1)).isEqualTo("[DONE]");
		StringBuilder text = new StringBuilder();
		String finish = null;
		JsonNode usage = null;
		for (String event : data.subList(0, data.size() - 1)) {
			JsonNode chunk = json(event);
			if (chunk.get("choices").isEmpty()) {
				usage = chunk.get("usage");
				continue;
			}
			assertThat(chunk.get("object").asText()).isEqualTo("text_completion");
			text.append(chunk.get("choices").get(0).get("text").asText());
			if (!chunk.get("choices").get(0).get("finish_reason").isNull()) {
				finish = chunk.get("choices").get(0).get("finish_reason").asText();
			}
		}
		assertThat(text.toString()).isEqualTo(choice.get("text").asText());
		assertThat(finish).isEqualTo(choice.get("finish_reason").asText());
		assertThat(usage).isNotNull();
		assertThat(usage.get("completion_tokens").asInt())
			.isEqualTo(whole.get("usage").get("completion_tokens").asInt());
	}

	@Test
	void chatStreamsRoleFirstThenContentThenFinish() {
		Map<String, Object> request = chat("What is the capital of France?", 10);
		request.put("griffin", Map.of("density", 1.0));
		JsonNode whole = post(this.client, "/v1/chat/completions", request, 200);
		assertThat(whole.get("object").asText()).isEqualTo("chat.completion");
		String content = whole.get("choices").get(0).get("message").get("content").asText();
		assertThat(content).contains("Paris");
		assertThat(whole.get("griffin").get("method").asText()).isEqualTo("dense");

		request.put("stream", true);
		List<String> data = events(this.client, "/v1/chat/completions", request);
		JsonNode first = json(data.get(0));
		assertThat(first.get("object").asText()).isEqualTo("chat.completion.chunk");
		assertThat(first.get("choices").get(0).get("delta").get("role").asText()).isEqualTo("assistant");
		StringBuilder text = new StringBuilder();
		for (String event : data.subList(1, data.size() - 2)) {
			text.append(json(event).get("choices").get(0).get("delta").get("content").asText());
		}
		JsonNode last = json(data.get(data.size() - 2));
		assertThat(last.get("choices").get(0).get("finish_reason").asText()).isIn("stop", "length");
		assertThat(data.get(data.size() - 1)).isEqualTo("[DONE]");
		assertThat(text.toString()).isEqualTo(content);
	}

	@Test
	void stopStringsLogprobsAndSeveralChoices() {
		Map<String, Object> request = completion("1, 2, 3, 4,", 20);
		request.put("stop", List.of(" 7"));
		request.put("logprobs", 2);
		request.put("n", 2);
		JsonNode response = post(this.client, "/v1/completions", request, 200);
		assertThat(response.get("choices")).hasSize(2);
		JsonNode choice = response.get("choices").get(0);
		assertThat(choice.get("text").asText()).doesNotContain(" 7").startsWith(" 5, 6,");
		assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
		JsonNode logprobs = choice.get("logprobs");
		assertThat(logprobs.get("tokens").size()).isEqualTo(logprobs.get("token_logprobs").size());
		assertThat(logprobs.get("token_logprobs").get(0).asDouble()).isLessThanOrEqualTo(0);
		assertThat(logprobs.get("top_logprobs").get(0).size()).isEqualTo(2);

		Map<String, Object> chat = chat("Say hi", 4);
		chat.put("logprobs", true);
		chat.put("top_logprobs", 3);
		JsonNode chatResponse = post(this.client, "/v1/chat/completions", chat, 200);
		JsonNode content = chatResponse.get("choices").get(0).get("logprobs").get("content");
		assertThat(content.size()).isGreaterThan(0);
		assertThat(content.get(0).get("top_logprobs")).hasSize(3);
	}

	@Test
	void aReplyThatEndsOnTheEndTokenKeepsItsLastCharactersWithStopStrings() {
		// the reply ends on the end token well inside its budget; a stop string that
		// never
		// comes holds back its length less one character until the end, which must then
		// release them, streamed or not
		Map<String, Object> plain = chat("What is the capital of France? Answer in one sentence.", 48);
		plain.put("griffin", Map.of("density", 1.0));
		JsonNode plainResponse = post(this.client, "/v1/chat/completions", plain, 200);
		JsonNode usage = plainResponse.get("usage");
		JsonNode expected = plainResponse.get("choices").get(0);
		assertThat(expected.get("finish_reason").asText()).isEqualTo("stop");
		String content = expected.get("message").get("content").asText();
		assertThat(content).contains("Paris");

		Map<String, Object> request = chat("What is the capital of France? Answer in one sentence.", 48);
		request.put("griffin", Map.of("density", 1.0));
		request.put("stop", List.of("#####"));
		request.put("logprobs", true);
		JsonNode choice = post(this.client, "/v1/chat/completions", request, 200).get("choices").get(0);
		assertThat(choice.get("message").get("content").asText()).isEqualTo(content);
		assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
		assertThat(choice.get("logprobs").get("content").size()).isEqualTo(usage.get("completion_tokens").asInt());

		request.put("stream", true);
		StringBuilder streamed = new StringBuilder();
		int entries = 0;
		List<String> data = events(this.client, "/v1/chat/completions", request);
		for (String event : data.subList(1, data.size() - 2)) {
			JsonNode delta = json(event).get("choices").get(0);
			streamed.append(delta.get("delta").get("content").asText());
			entries += delta.get("logprobs").get("content").size();
		}
		assertThat(streamed.toString()).isEqualTo(content);
		assertThat(entries).isEqualTo(usage.get("completion_tokens").asInt());

		Map<String, Object> completion = completion("The capital of France is", 24);
		completion.put("stop", List.of("#####"));
		JsonNode whole = post(this.client, "/v1/completions", completion, 200).get("choices").get(0);
		completion.remove("stop");
		assertThat(whole.get("text").asText()).isEqualTo(
				post(this.client, "/v1/completions", completion, 200).get("choices").get(0).get("text").asText());
	}

	@Test
	void tokenizeAndDetokenize() {
		JsonNode tokens = post(this.client, "/tokenize",
				Map.of("model", ServiceSupport.MODEL, "prompt", "Hello, world!"), 200);
		assertThat(tokens.get("count").asInt()).isEqualTo(tokens.get("tokens").size()).isGreaterThan(0);
		List<Integer> ids = new ArrayList<>();
		tokens.get("tokens").forEach((id) -> ids.add(id.asInt()));
		JsonNode text = post(this.client, "/detokenize", Map.of("tokens", ids), 200);
		assertThat(text.get("prompt").asText()).isEqualTo("Hello, world!");
		JsonNode chatTokens = post(this.client, "/tokenize",
				Map.of("messages", List.of(Map.of("role", "user", "content", "Hi"))), 200);
		assertThat(chatTokens.get("count").asInt()).isGreaterThan(tokens.get("count").asInt());
	}

	@Test
	void expertCacheServesAnExactRepeat() {
		Map<String, Object> request = completion("Expert caching is keyed on the prompt's token ids, so", 12);
		double hits = ServiceSupport.metric(ServiceSupport.getText(this.client, "/actuator/prometheus"),
				"griffin_expert_cache_hits_total");
		JsonNode cold = post(this.client, "/v1/completions", request, 200);
		JsonNode hot = post(this.client, "/v1/completions", request, 200);
		// without an API key or a cache_salt every client shares the cache:
		// whether a prompt was seen before is not reported, since it may have
		// been someone else's
		assertThat(cold.get("griffin").has("cache_hit")).isFalse();
		assertThat(hot.get("griffin").has("cache_hit")).isFalse();
		assertThat(ServiceSupport.metric(ServiceSupport.getText(this.client, "/actuator/prometheus"),
				"griffin_expert_cache_hits_total"))
			.isEqualTo(hits + 1);
		assertThat(hot.get("choices").get(0).get("text").asText())
			.isEqualTo(cold.get("choices").get(0).get("text").asText());
		// a salt makes the entries the client's own, and then hits are reported
		request.put("cache_salt", "salt-one");
		JsonNode salted = post(this.client, "/v1/completions", request, 200);
		JsonNode saltedAgain = post(this.client, "/v1/completions", request, 200);
		assertThat(salted.get("griffin").get("cache_hit").asBoolean()).as("the unsalted entry is not shared").isFalse();
		assertThat(saltedAgain.get("griffin").get("cache_hit").asBoolean()).isTrue();
		request.put("cache_salt", "salt-two");
		assertThat(post(this.client, "/v1/completions", request, 200).get("griffin").get("cache_hit").asBoolean())
			.isFalse();
		request.put("griffin", Map.of("cache", false));
		JsonNode optOut = post(this.client, "/v1/completions", request, 200);
		assertThat(optOut.get("griffin").get("cache_hit").asBoolean()).isFalse();
		assertThat(optOut.get("choices").get(0).get("text").asText())
			.isEqualTo(cold.get("choices").get(0).get("text").asText());
	}

	/**
	 * Chats with one system message: from the third on, each restores the conversation's
	 * shared start (the system message, rendered by the template) from a cached prefix,
	 * and replies as it does without the cache.
	 */
	@Test
	void chatsThatShareASystemMessageRunOnlyTheirOwnRest() {
		String system = "You are a geography teacher who answers in one plain sentence for a child.";
		String[] questions = { "Why is the sea salty?", "Where do rivers begin?", "How do rivers reach the sea?" };
		double before = ServiceSupport.metric(ServiceSupport.getText(this.client, "/actuator/prometheus"),
				"griffin_prompt_prefix_tokens_total");
		JsonNode last = null;
		for (String question : questions) {
			Map<String, Object> request = new HashMap<>(Map.of("model", ServiceSupport.MODEL, "messages",
					List.of(Map.of("role", "system", "content", system), Map.of("role", "user", "content", question)),
					"max_tokens", 8, "temperature", 0, "cache_salt", "prefix-test"));
			last = post(this.client, "/v1/chat/completions", request, 200);
			if (question.equals(questions[2])) {
				request.put("griffin", Map.of("cache", false));
				JsonNode uncached = post(this.client, "/v1/chat/completions", request, 200);
				assertThat(last.at("/choices/0/message/content").asText())
					.isEqualTo(uncached.at("/choices/0/message/content").asText());
			}
		}
		double restored = ServiceSupport.metric(ServiceSupport.getText(this.client, "/actuator/prometheus"),
				"griffin_prompt_prefix_tokens_total") - before;
		// the system message alone is 16 tokens and more
		assertThat(restored).isGreaterThanOrEqualTo(16).isLessThan(last.at("/usage/prompt_tokens").asInt());
	}

	@Test
	void aLogitBiasSteersTheRealModel() {
		Map<String, Object> request = completion("The capital of France is", 3);
		JsonNode plain = post(this.client, "/v1/completions", request, 200);
		Map<String, Object> ids = Map.of("prompt", " Lyon");
		int lyon = post(this.client, "/tokenize", ids, 200).get("tokens").get(0).asInt();
		request.put("logit_bias", Map.of(String.valueOf(lyon), 100));
		JsonNode forced = post(this.client, "/v1/completions", request, 200);
		assertThat(forced.at("/choices/0/text").asText()).isEqualTo(" Lyon Lyon Lyon")
			.isNotEqualTo(plain.at("/choices/0/text").asText());

		Map<String, Object> chat = chat("What is the capital of France? Answer in one word.", 8);
		String answer = post(this.client, "/v1/chat/completions", chat, 200).at("/choices/0/message/content").asText();
		assertThat(answer).contains("Paris");
		int paris = post(this.client, "/tokenize", Map.of("prompt", "Paris"), 200).get("tokens").get(0).asInt();
		int spaced = post(this.client, "/tokenize", Map.of("prompt", " Paris"), 200).get("tokens").get(0).asInt();
		chat.put("logit_bias", Map.of(String.valueOf(paris), -100, String.valueOf(spaced), -100));
		String banned = post(this.client, "/v1/chat/completions", chat, 200).at("/choices/0/message/content").asText();
		assertThat(banned).doesNotContain("Paris");
	}

	@Test
	void aStopTokenIdEndsTheReplyWithoutItself() {
		Map<String, Object> request = completion("The capital of France is", 8);
		assertThat(post(this.client, "/v1/completions", request, 200).at("/choices/0/text").asText())
			.startsWith(" Paris");
		int paris = post(this.client, "/tokenize", Map.of("prompt", " Paris"), 200).get("tokens").get(0).asInt();
		request.put("stop_token_ids", List.of(paris));
		JsonNode stopped = post(this.client, "/v1/completions", request, 200);
		assertThat(stopped.at("/choices/0/text").asText()).isEmpty();
		assertThat(stopped.at("/choices/0/finish_reason").asText()).isEqualTo("stop");
	}

	@Test
	void minTokensKeepsAReplyGoingPastItsEnd() {
		Map<String, Object> request = chat("What is the capital of France? Answer in one word.", 40);
		int alone = post(this.client, "/v1/chat/completions", request, 200).at("/usage/completion_tokens").asInt();
		assertThat(alone).as("the reply ends on its own before the minimum below").isLessThan(20);
		request.put("min_tokens", 20);
		JsonNode longer = post(this.client, "/v1/chat/completions", request, 200);
		assertThat(longer.at("/usage/completion_tokens").asInt()).isGreaterThanOrEqualTo(20);
	}

	@Test
	void echoReturnsThePromptBeforeEachChoice() {
		Map<String, Object> plain = completion("The capital of France is", 6);
		String completion = post(this.client, "/v1/completions", plain, 200).at("/choices/0/text").asText();
		assertThat(completion).isNotEmpty();

		Map<String, Object> echo = completion("The capital of France is", 6);
		echo.put("echo", true);
		echo.put("n", 2);
		JsonNode whole = post(this.client, "/v1/completions", echo, 200);
		for (JsonNode choice : whole.get("choices")) {
			assertThat(choice.get("text").asText()).isEqualTo("The capital of France is" + completion);
		}
		assertThat(whole.at("/usage/completion_tokens").asInt()).as("the echo is not generated")
			.isLessThanOrEqualTo(12);

		// streamed: each choice's first chunk is the prompt
		echo.put("stream", true);
		Map<Integer, StringBuilder> texts = new HashMap<>();
		for (String event : events(this.client, "/v1/completions", echo)) {
			if (event.equals("[DONE]")) {
				continue;
			}
			JsonNode choice = json(event).at("/choices/0");
			StringBuilder text = texts.computeIfAbsent(choice.get("index").asInt(), (k) -> new StringBuilder());
			if (text.isEmpty()) {
				assertThat(choice.get("text").asText()).isEqualTo("The capital of France is");
			}
			text.append(choice.get("text").asText());
		}
		assertThat(texts).hasSize(2);
		assertThat(texts.values())
			.allSatisfy((text) -> assertThat(text).hasToString("The capital of France is" + completion));

		// token ids come back as their text
		Map<String, Object> ids = completion("x", 2);
		List<Integer> tokens = new ArrayList<>();
		post(this.client, "/tokenize", Map.of("prompt", "Hello there"), 200).get("tokens")
			.forEach((token) -> tokens.add(token.asInt()));
		ids.put("prompt", tokens);
		ids.put("echo", true);
		String echoed = post(this.client, "/v1/completions", ids, 200).at("/choices/0/text").asText();
		assertThat(echoed).startsWith("Hello there");
		// one prompt of token ids in an array, as clients that batch prompts send it
		ids.put("prompt", List.of(tokens));
		assertThat(post(this.client, "/v1/completions", ids, 200).at("/choices/0/text").asText()).isEqualTo(echoed);
		// two prompts of token ids: each choice echoes its own
		ids.put("prompt", List.of(tokens, tokens));
		JsonNode two = post(this.client, "/v1/completions", ids, 200).get("choices");
		assertThat(two).hasSize(2);
		two.forEach((choice) -> assertThat(choice.get("text").asText()).isEqualTo(echoed));
	}

	/**
	 * Several prompts in one completion request: prompt i's choices are indices i x n on,
	 * each what the prompt alone gives, whole and streamed, and each says what ran for
	 * it; usage counts them all. Too many sequences, a mix of forms and an empty prompt
	 * are the client's 400s, naming the prompt.
	 */
	@Test
	void severalPromptsRunInOneRequest() {
		List<String> texts = List.of("The capital of France is", "Once upon a time", "def add(a, b):");
		List<JsonNode> alone = new ArrayList<>();
		int promptTokens = 0;
		int completionTokens = 0;
		for (String text : texts) {
			JsonNode single = post(this.client, "/v1/completions", completion(text, 6), 200);
			alone.add(single);
			promptTokens += single.at("/usage/prompt_tokens").asInt();
			completionTokens += single.at("/usage/completion_tokens").asInt();
		}
		Map<String, Object> several = completion("x", 6);
		several.put("prompt", texts);
		several.put("n", 2);
		JsonNode whole = post(this.client, "/v1/completions", several, 200);
		JsonNode choices = whole.get("choices");
		assertThat(choices).hasSize(6);
		for (int i = 0; i < 6; i++) {
			JsonNode single = alone.get(i / 2);
			assertThat(choices.get(i).get("index").asInt()).isEqualTo(i);
			assertThat(choices.get(i).get("text").asText()).as("choice %d", i)
				.isEqualTo(single.at("/choices/0/text").asText());
			assertThat(choices.get(i).get("griffin")).as("choice %d", i).isEqualTo(single.get("griffin"));
		}
		assertThat(whole.has("griffin")).as("each choice reports its own").isFalse();
		assertThat(whole.at("/usage/prompt_tokens").asInt()).isEqualTo(promptTokens);
		assertThat(whole.at("/usage/completion_tokens").asInt()).isEqualTo(2 * completionTokens);

		several.put("stream", true);
		Map<Integer, StringBuilder> streamed = new java.util.TreeMap<>();
		for (String event : events(this.client, "/v1/completions", several)) {
			if (!event.equals("[DONE]")) {
				JsonNode choice = json(event).at("/choices/0");
				streamed.computeIfAbsent(choice.get("index").asInt(), (k) -> new StringBuilder())
					.append(choice.get("text").asText());
			}
		}
		assertThat(streamed.keySet()).containsExactly(0, 1, 2, 3, 4, 5);
		streamed.forEach((index, text) -> assertThat(text).as("choice %d", index)
			.hasToString(alone.get(index / 2).at("/choices/0/text").asText()));

		// the prompts as token ids
		List<List<Integer>> ids = new ArrayList<>();
		for (String text : texts) {
			List<Integer> tokens = new ArrayList<>();
			post(this.client, "/tokenize", Map.of("prompt", text), 200).get("tokens")
				.forEach((token) -> tokens.add(token.asInt()));
			ids.add(tokens);
		}
		several.remove("stream");
		several.put("n", 1);
		several.put("prompt", ids);
		JsonNode fromIds = post(this.client, "/v1/completions", several, 200).get("choices");
		assertThat(fromIds).hasSize(3);
		for (int i = 0; i < 3; i++) {
			assertThat(fromIds.get(i).get("text").asText()).isEqualTo(alone.get(i).at("/choices/0/text").asText());
		}

		several.put("prompt", java.util.Collections.nCopies(17, "Hi"));
		assertError(post(this.client, "/v1/completions", several, 400), "invalid_request_error", "prompt");
		several.put("prompt", java.util.Collections.nCopies(3, "Hi"));
		several.put("n", 8);
		assertError(post(this.client, "/v1/completions", several, 400), "invalid_request_error", "prompt");
		several.put("n", 1);
		several.put("prompt", List.of("Hi", List.of(1)));
		assertError(post(this.client, "/v1/completions", several, 400), "invalid_request_error", "prompt");
		several.put("prompt", List.of("Hi", ""));
		assertError(post(this.client, "/v1/completions", several, 400), "invalid_request_error", "prompt[1]");
		several.put("prompt", List.of(List.of(1, 2), List.of(1, 2, 1 << 30)));
		assertError(post(this.client, "/v1/completions", several, 400), "invalid_request_error", "prompt[1][2]");
	}

	/**
	 * Echo with logprobs scores the prompt: its tokens come first in the logprobs, the
	 * first with null, and a prompt token's log-probability is what the same token has
	 * when the model generates it.
	 */
	@Test
	void echoWithLogprobsScoresThePrompt() {
		String prompt = "The capital of France is";
		Map<String, Object> plain = completion(prompt, 1);
		plain.put("logprobs", 1);
		JsonNode generated = post(this.client, "/v1/completions", plain, 200).at("/choices/0/logprobs");
		String next = generated.at("/tokens/0").asText();
		double nextLogprob = generated.at("/token_logprobs/0").asDouble();

		Map<String, Object> echo = completion(prompt + next, 3);
		echo.put("echo", true);
		echo.put("logprobs", 2);
		JsonNode choice = post(this.client, "/v1/completions", echo, 200).at("/choices/0");
		JsonNode logprobs = choice.get("logprobs");
		int promptTokens = post(this.client, "/tokenize", Map.of("prompt", prompt + next), 200).at("/count").asInt();
		JsonNode tokens = logprobs.get("tokens");
		assertThat(tokens).hasSizeGreaterThan(promptTokens);
		assertThat(logprobs.at("/token_logprobs/0").isNull()).isTrue();
		assertThat(logprobs.at("/top_logprobs/0").isNull()).isTrue();
		StringBuilder text = new StringBuilder();
		for (int i = 0; i < tokens.size(); i++) {
			assertThat(logprobs.at("/text_offset/" + i).asInt()).isEqualTo(text.length());
			text.append(tokens.get(i).asText());
			if (i > 0) {
				assertThat(logprobs.at("/token_logprobs/" + i).asDouble()).isLessThanOrEqualTo(0);
				assertThat(logprobs.at("/top_logprobs/" + i).size()).isBetween(1, 2);
			}
		}
		assertThat(choice.get("text").asText()).isEqualTo(text.toString()).startsWith(prompt + next);
		// the last prompt token is the plain request's generated one, with its
		// log-probability
		assertThat(tokens.get(promptTokens - 1).asText()).isEqualTo(next);
		assertThat(logprobs.at("/token_logprobs/" + (promptTokens - 1)).asDouble()).isCloseTo(nextLogprob,
				org.assertj.core.data.Offset.offset(0.05));

		// streamed: the first chunk carries the prompt's tokens, and each chunk's offsets
		// are in the choice's whole text
		echo.put("stream", true);
		List<String> events = events(this.client, "/v1/completions", echo);
		JsonNode first = json(events.get(0)).at("/choices/0");
		assertThat(first.get("text").asText()).isEqualTo(prompt + next);
		assertThat(first.at("/logprobs/tokens")).hasSize(promptTokens);
		assertThat(first.at("/logprobs/token_logprobs/0").isNull()).isTrue();
		StringBuilder streamed = new StringBuilder();
		for (String event : events.subList(0, events.size() - 1)) {
			JsonNode chunk = json(event).at("/choices/0");
			JsonNode offsets = chunk.at("/logprobs/text_offset");
			JsonNode chunkTokens = chunk.at("/logprobs/tokens");
			for (int i = 0; i < offsets.size(); i++) {
				assertThat(offsets.get(i).asInt()).isEqualTo(streamed.length());
				streamed.append(chunkTokens.get(i).asText());
			}
		}
		assertThat(streamed).hasToString(choice.get("text").asText());
	}

	/**
	 * best_of samples that many choices and returns the n with the highest
	 * log-probability per token: the same seeds with n = best_of give the candidates.
	 */
	@Test
	void bestOfReturnsTheMostLikelyChoices() {
		Map<String, Object> all = completion("Once upon a time", 8);
		all.put("temperature", 1.0);
		all.put("seed", 11);
		all.put("n", 4);
		all.put("logprobs", 0);
		List<String> texts = new ArrayList<>();
		List<Double> means = new ArrayList<>();
		for (JsonNode choice : post(this.client, "/v1/completions", all, 200).get("choices")) {
			texts.add(choice.get("text").asText());
			double sum = 0;
			for (JsonNode value : choice.at("/logprobs/token_logprobs")) {
				sum += value.asDouble();
			}
			means.add(sum / choice.at("/logprobs/token_logprobs").size());
		}
		List<Integer> ranked = new ArrayList<>(List.of(0, 1, 2, 3));
		ranked.sort((a, b) -> Double.compare(means.get(b), means.get(a)));

		Map<String, Object> best = completion("Once upon a time", 8);
		best.put("temperature", 1.0);
		best.put("seed", 11);
		best.put("n", 2);
		best.put("best_of", 4);
		JsonNode response = post(this.client, "/v1/completions", best, 200);
		JsonNode choices = response.get("choices");
		assertThat(choices).hasSize(2);
		assertThat(choices.get(0).get("index").asInt()).isZero();
		assertThat(choices.get(1).get("index").asInt()).isOne();
		assertThat(choices.get(0).get("text").asText()).isEqualTo(texts.get(ranked.get(0)));
		assertThat(choices.get(1).get("text").asText()).isEqualTo(texts.get(ranked.get(1)));
		assertThat(choices.get(0).path("logprobs").isMissingNode()).as("not asked for").isTrue();
		assertThat(response.at("/usage/completion_tokens").asInt()).as("all four are generated")
			.isGreaterThan(choices.get(0).get("text").asText().isEmpty() ? 0 : 8);

		best.put("stream", true);
		assertError(post(this.client, "/v1/completions", best, 400), "invalid_request_error", "best_of");
	}

	@Test
	void fieldsTheServerCannotHonourAre400sNotIgnored() {
		Map<String, Object> json = chat("Hi", 4);
		json.put("response_format", Map.of("type", "json_object"));
		assertError(post(this.client, "/v1/chat/completions", json, 400), "invalid_request_error", "response_format");
		Map<String, Object> tools = chat("Hi", 4);
		tools.put("tools", List.of(Map.of("type", "function", "function", Map.of("name", "f"))));
		assertError(post(this.client, "/v1/chat/completions", tools, 400), "invalid_request_error", "tools");
		Map<String, Object> echo = completion("Hi", 4);
		echo.put("echo", true);
		echo.put("suffix", "and after");
		assertError(post(this.client, "/v1/completions", echo, 400), "invalid_request_error", "echo");
		// the default model's vocabulary has no fill-in-the-middle tokens
		Map<String, Object> suffix = completion("def add(a, b):\n    return ", 4);
		suffix.put("suffix", "\n\nprint(add(2, 3))\n");
		JsonNode infill = post(this.client, "/v1/completions", suffix, 400);
		assertError(infill, "invalid_request_error", "suffix");
		assertThat(infill.at("/error/code").asText()).isEqualTo("unsupported_parameter");
		assertThat(infill.at("/error/message").asText()).contains("fill-in-the-middle");
		suffix.put("suffix", "");
		post(this.client, "/v1/completions", suffix, 200);
		Map<String, Object> text = chat("Hi", 2);
		text.put("response_format", Map.of("type", "text"));
		text.put("tool_choice", "none");
		post(this.client, "/v1/chat/completions", text, 200);
	}

	@Test
	void invalidRequestsAre400sThatNameTheField() {
		Map<String, Object> temperature = completion("x", 4);
		temperature.put("temperature", 5);
		assertError(post(this.client, "/v1/completions", temperature, 400), "invalid_request_error", "temperature");

		String wrongType = "{\"model\": \"" + ServiceSupport.MODEL
				+ "\", \"prompt\": \"x\", \"max_tokens\": {\"a\": 1}}";
		assertError(json(this.client.post()
			.uri("/v1/completions")
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue(wrongType)
			.exchange()
			.expectStatus()
			.isBadRequest()
			.expectBody(String.class)
			.returnResult()
			.getResponseBody()), "invalid_request_error", "max_tokens");

		assertError(post(this.client, "/v1/completions", completion("x", 20000), 400), "invalid_request_error",
				"max_tokens");

		Map<String, Object> density = completion("x", 4);
		density.put("griffin", Map.of("density", 1.5));
		assertError(post(this.client, "/v1/completions", density, 400), "invalid_request_error", "griffin.density");

		Map<String, Object> method = completion("x", 4);
		method.put("griffin", Map.of("method", "best"));
		assertError(post(this.client, "/v1/completions", method, 400), "invalid_request_error", "griffin.method");
		for (String needsPrior : List.of("glass", "layerwise")) {
			method.put("griffin", Map.of("method", needsPrior));
			JsonNode noPrior = post(this.client, "/v1/completions", method, 400);
			assertError(noPrior, "invalid_request_error", "griffin.method");
			assertThat(noPrior.at("/error/message").asText()).as("%s on a model without a neuron prior", needsPrior)
				.contains("neuron prior");
		}

		assertError(post(this.client, "/v1/chat/completions",
				Map.of("model", ServiceSupport.MODEL, "messages", List.of()), 400), "invalid_request_error",
				"messages");
		assertError(post(this.client, "/v1/completions", Map.of("prompt", "x"), 400), "invalid_request_error", "model");

		Map<String, Object> unknownFields = completion("Hello", 2);
		unknownFields.put("some_future_field", Map.of("x", 1));
		post(this.client, "/v1/completions", unknownFields, 200);

		assertError(json(this.client.post()
			.uri("/v1/completions")
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue("{not json")
			.exchange()
			.expectStatus()
			.isBadRequest()
			.expectBody(String.class)
			.returnResult()
			.getResponseBody()), "invalid_request_error", null);
	}

	@Test
	void contextLengthExceededGivesTheNumbers() {
		Map<String, Object> request = completion("Hello there", 9000);
		JsonNode error = post(this.client, "/v1/completions", request, 400);
		assertError(error, "invalid_request_error", "prompt");
		assertThat(error.get("error").get("code").asText()).isEqualTo("context_length_exceeded");
		assertThat(error.get("error").get("message").asText()).contains("8192").contains("9002").contains("9000");
	}

	@Test
	void unknownModelsAndPathsAre404s() {
		Map<String, Object> request = completion("x", 2);
		request.put("model", "gpt-5");
		JsonNode error = post(this.client, "/v1/completions", request, 404);
		assertError(error, "invalid_request_error", "model");
		assertThat(error.get("error").get("code").asText()).isEqualTo("model_not_found");
		assertError(json(this.client.get()
			.uri("/v1/nothing-here")
			.exchange()
			.expectStatus()
			.isNotFound()
			.expectBody(String.class)
			.returnResult()
			.getResponseBody()), "invalid_request_error", null);
	}

	@Test
	void bodiesOverTheLimitAre413s() {
		String big = "{\"model\": \"" + ServiceSupport.MODEL + "\", \"prompt\": \"" + "a".repeat(2 << 20) + "\"}";
		assertError(json(this.client.post()
			.uri("/v1/completions")
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue(big)
			.exchange()
			.expectStatus()
			.isEqualTo(413)
			.expectBody(String.class)
			.returnResult()
			.getResponseBody()), "invalid_request_error", null);
	}

	@Test
	void flockingHeatmapIsAPng() throws Exception {
		byte[] png = this.client.post()
			.uri("/v1/griffin/flocking")
			.contentType(MediaType.APPLICATION_JSON)
			.bodyValue(Map.of("prompt", "Rivers run to the sea because", "maxTokens", 6, "layer", 3))
			.exchange()
			.expectStatus()
			.isOk()
			.expectHeader()
			.contentType(MediaType.IMAGE_PNG)
			.expectHeader()
			.exists("X-Griffin-Jaccard")
			.expectBody(byte[].class)
			.returnResult()
			.getResponseBody();
		java.awt.image.BufferedImage image = javax.imageio.ImageIO.read(new java.io.ByteArrayInputStream(png));
		assertThat(image.getWidth()).isGreaterThan(1536);
		assertError(post(this.client, "/v1/griffin/flocking", Map.of("prompt", "x", "layer", 99), 400),
				"invalid_request_error", "layer");
	}

	@Test
	void healthMetricsAndDocs() {
		this.client.get().uri("/actuator/health/liveness").exchange().expectStatus().isOk().expectBody(Void.class);
		this.client.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk().expectBody(Void.class);
		post(this.client, "/v1/completions", completion("Metrics", 2), 200);
		String prometheus = ServiceSupport.getText(this.client, "/actuator/prometheus");
		assertThat(prometheus).contains("griffin_time_to_first_token_seconds_bucket",
				"griffin_inter_token_latency_seconds", "griffin_queue_time_seconds", "griffin_request_duration_seconds",
				"griffin_prompt_tokens_total", "griffin_generation_tokens_total", "griffin_requests_cancelled_total",
				"griffin_requests_failed_total", "griffin_requests_running", "griffin_requests_waiting",
				"griffin_ff_density", "griffin_expert_cache_hit_ratio", "griffin_expert_cache_bytes");
		this.client.get().uri("/actuator/env").exchange().expectStatus().isNotFound().expectBody(Void.class);
		this.client.get().uri("/actuator/beans").exchange().expectStatus().isNotFound().expectBody(Void.class);
		String docs = ServiceSupport.getText(this.client, "/v3/api-docs");
		assertThat(docs).contains("/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize", "/detokenize",
				"/v1/griffin/flocking");
		JsonNode api = json(docs);
		JsonNode methods = api.get("components")
			.get("schemas")
			.get("GriffinOptions")
			.get("properties")
			.get("method")
			.get("enum");
		List<String> offered = new ArrayList<>();
		methods.forEach((method) -> offered.add(method.asText()));
		assertThat(offered).as("the selection methods the API documents")
			.containsExactlyInAnyOrderElementsOf(SelectionMethod.wireNames());
		JsonNode paths = api.get("paths");
		for (String path : List.of("/v1/completions", "/v1/chat/completions")) {
			JsonNode responses = paths.get(path).get("post").get("responses");
			List<String> codes = new ArrayList<>();
			responses.fieldNames().forEachRemaining(codes::add);
			assertThat(codes).as(path).containsExactlyInAnyOrder("200", "400", "404", "429", "503");
			assertThat(responses.get("429").get("content").toString()).as(path).contains("ErrorResponse");
		}
		this.client.get().uri("/swagger-ui.html").exchange().expectStatus().is3xxRedirection().expectBody(Void.class);
		this.client.get().uri("/swagger-ui/index.html").exchange().expectStatus().isOk().expectBody(Void.class);
	}

}

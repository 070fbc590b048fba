package dev.griffin.serve.web;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;
import tools.jackson.databind.json.JsonMapper;

import dev.griffin.serve.config.GriffinProperties;
import dev.griffin.serve.generation.GenerationJob;
import dev.griffin.serve.generation.InvalidParameterException;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.griffin.DefaultDensity;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.tokenizer.ChatTemplate;
import dev.griffin.serve.web.ApiTypes.ChatCompletionRequest;
import dev.griffin.serve.web.ApiTypes.CompletionRequest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Request mapping without a model: defaults, server limits, the field each error names
 * and the tenant's cache salt.
 */
class RequestMapperTests {

	private static final JsonMapper JSON = JsonMapper.builder().build();

	private static final int CONTEXT = 100;

	private static final int VOCABULARY = 1000;

	private final RequestMapper mapper = mapper(Map.of("griffin.security.tenant-salts.key-one", "team-a"));

	private static RequestMapper mapper(Map<String, String> properties) {
		GriffinProperties bound = new Binder(new MapConfigurationPropertySource(properties)).bindOrCreate("griffin",
				GriffinProperties.class);
		return new RequestMapper(bound, null);
	}

	private static CompletionRequest completion(String json) {
		return JSON.readValue(json, CompletionRequest.class);
	}

	private RequestMapper.Mapped job(String json, String tenant) {
		CompletionRequest request = completion(json);
		return this.mapper.job(request, new int[] { 1, 2, 3 }, CONTEXT, VOCABULARY, request.maxTokens(),
				(request.logprobs() == null) ? -1 : request.logprobs(), "prompt", tenant);
	}

	/** The field an invalid request names. */
	private String field(String json) {
		try {
			job(json, null);
		}
		catch (InvalidRequestException ex) {
			return ex.param();
		}
		catch (InvalidParameterException ex) {
			return ex.parameter();
		}
		throw new AssertionError("accepted: " + json);
	}

	@Test
	void defaultsComeFromTheServerAndTheBudgetFitsTheContext() {
		GenerationJob job = job("{}", null).job();
		assertThat(job.params().temperature()).isEqualTo(1.0);
		assertThat(job.params().topK()).isZero();
		assertThat(job.params().maxNewTokens()).as("the default 256, cut to the context left").isEqualTo(CONTEXT - 3);
		assertThat(job.griffin().density()).isEqualTo(DefaultDensity.SERVER.forPrompt(3));
		assertThat(job.griffin().method()).isEqualTo(SelectionMethod.DELAYED);
		assertThat(job.choices()).isEqualTo(1);
		assertThat(job.topLogprobs()).isEqualTo(-1);
		assertThat(job.useCache()).isTrue();
		assertThat(job.tenantSalt()).isNull();
	}

	@Test
	void theServersDefaultDensityIsDefaultDensitySERVER() {
		GriffinProperties bound = new Binder(new MapConfigurationPropertySource(Map.of())).bindOrCreate("griffin",
				GriffinProperties.class);
		assertThat(bound.generation().defaultDensityRule()).isEqualTo(DefaultDensity.SERVER);
		assertThat(bound.generation().defaultMethod()).isEqualTo(SelectionMethod.SERVER_DEFAULT);
	}

	@Test
	void thePromptGatheringTimeBindsAndIsNeverNegative() {
		GriffinProperties defaults = new Binder(new MapConfigurationPropertySource(Map.of())).bindOrCreate("griffin",
				GriffinProperties.class);
		assertThat(defaults.generation().promptGather()).isEqualTo(Duration.ofMillis(20));
		GriffinProperties off = new Binder(
				new MapConfigurationPropertySource(Map.of("griffin.generation.prompt-gather", "0")))
			.bindOrCreate("griffin", GriffinProperties.class);
		assertThat(off.generation().promptGather()).isZero();
		assertThatThrownBy(() -> mapper(Map.of("griffin.generation.prompt-gather", "-1ms")))
			.hasStackTraceContaining("prompt-gather >= 0");
		assertThat(defaults.generation().decodingPromptTokens()).isEqualTo(128);
		assertThatThrownBy(() -> mapper(Map.of("griffin.generation.decoding-prompt-tokens", "0")))
			.hasStackTraceContaining("decoding-prompt-tokens >= 1");
	}

	@Test
	void aPromptBelowTheDenseLengthRunsDenseUnlessTheRequestNamesADensity() {
		RequestMapper mapper = mapper(Map.of("griffin.generation.default-density", "0.5",
				"griffin.generation.dense-below-prompt-tokens", "4"));
		CompletionRequest plain = completion("{\"max_tokens\": 1}");
		CompletionRequest named = completion("{\"max_tokens\": 1, \"griffin\": {\"density\": 0.25}}");
		CompletionRequest method = completion("{\"max_tokens\": 1, \"griffin\": {\"method\": \"magnitude\"}}");
		for (int length = 1; length <= 6; length++) {
			int[] prompt = new int[length];
			double expected = (length < 4) ? 1.0 : 0.5;
			assertThat(mapper.job(plain, prompt, CONTEXT, VOCABULARY, 1, -1, "prompt", null).job().griffin().density())
				.as("%d prompt tokens", length)
				.isEqualTo(expected);
			assertThat(mapper.job(method, prompt, CONTEXT, VOCABULARY, 1, -1, "prompt", null).job().griffin().density())
				.as("a method alone takes the default rule's density")
				.isEqualTo(expected);
			assertThat(mapper.job(named, prompt, CONTEXT, VOCABULARY, 1, -1, "prompt", null).job().griffin().density())
				.as("a named density always runs")
				.isEqualTo(0.25);
		}
		RequestMapper never = mapper(Map.of("griffin.generation.default-density", "0.5",
				"griffin.generation.dense-below-prompt-tokens", "0"));
		assertThat(never.job(plain, new int[1], CONTEXT, VOCABULARY, 1, -1, "prompt", null).job().griffin().density())
			.isEqualTo(0.5);
		assertThatThrownBy(() -> mapper(Map.of("griffin.generation.dense-below-prompt-tokens", "-1")))
			.hasStackTraceContaining("dense-below-prompt-tokens");
		assertThatThrownBy(() -> mapper(Map.of("griffin.generation.default-density", "1.5")))
			.hasStackTraceContaining("density must be in [0, 1]");
	}

	@Test
	void requestFieldsReachTheJob() {
		GenerationJob job = job("""
				{"max_tokens": 5, "temperature": 0, "top_k": -1, "top_p": 0.5, "seed": 7, "stop": ["a", "b"],
				 "n": 3, "logprobs": 2, "ignore_eos": true,
				 "griffin": {"density": 0.5, "method": "topk-sample", "cache": false}}""", null).job();
		assertThat(job.params().maxNewTokens()).isEqualTo(5);
		assertThat(job.params().isGreedy()).isTrue();
		assertThat(job.params().topK()).as("-1 disables, as 0").isZero();
		assertThat(job.params().topP()).isEqualTo(0.5);
		assertThat(job.params().seed()).isEqualTo(7L);
		assertThat(job.params().stopStrings()).containsExactly("a", "b");
		assertThat(job.params().ignoreEos()).isTrue();
		assertThat(job.choices()).isEqualTo(3);
		assertThat(job.topLogprobs()).isEqualTo(2);
		assertThat(job.griffin().density()).isEqualTo(0.5);
		assertThat(job.griffin().method()).isEqualTo(SelectionMethod.TOPK_SAMPLE);
		assertThat(job.useCache()).isFalse();
		assertThat(completion("{\"stop\": \"x\"}").stop()).isEqualTo("x");
	}

	@Test
	void everyErrorNamesItsField() {
		assertThat(field("{\"max_tokens\": 0}")).isEqualTo("max_tokens");
		assertThat(field("{\"max_tokens\": 5000}")).as("above the server's limit").isEqualTo("max_tokens");
		assertThat(field("{\"max_tokens\": 98}")).as("3 + 98 > 100").isEqualTo("prompt");
		assertThat(field("{\"temperature\": 2.5}")).isEqualTo("temperature");
		assertThat(field("{\"top_p\": 0}")).isEqualTo("top_p");
		assertThat(field("{\"repetition_penalty\": 1e-40}")).isEqualTo("repetition_penalty");
		assertThat(field("{\"stop\": [1]}")).isEqualTo("stop");
		assertThat(field("{\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}")).isEqualTo("stop");
		assertThat(field("{\"n\": 9}")).isEqualTo("n");
		assertThat(field("{\"n\": 0}")).isEqualTo("n");
		assertThat(field("{\"logprobs\": 21}")).isEqualTo("top_logprobs");
		assertThat(field("{\"griffin\": {\"density\": 1.5}}")).isEqualTo("griffin.density");
		assertThat(field("{\"griffin\": {\"density\": -0.0001}}")).isEqualTo("griffin.density");
		assertThat(field("{\"griffin\": {\"method\": \"best\"}}")).isEqualTo("griffin.method");
		assertThat(field("{\"cache_salt\": \"\"}")).isEqualTo("cache_salt");
		assertThat(field("{\"cache_salt\": \"" + "s".repeat(257) + "\"}")).isEqualTo("cache_salt");
	}

	@Test
	void theCacheIsOwnOnlyWithAKeyOrASalt() {
		assertThat(job("{}", null).ownCache()).isFalse();
		RequestMapper.Mapped keyed = job("{}", "key-one");
		assertThat(keyed.ownCache()).isTrue();
		assertThat(keyed.job().tenantSalt()).as("the configured salt of the key").isEqualTo("team-a");
		assertThat(keyed.job().rateLimitKey()).isEqualTo("key-one");
		assertThat(job("{}", "key-two").job().tenantSalt()).isEqualTo("key:key-two");
		RequestMapper.Mapped salted = job("{\"cache_salt\": \"mine\"}", null);
		assertThat(salted.ownCache()).isTrue();
		assertThat(salted.job().tenantSalt()).isEqualTo("|salt:mine");
		assertThat(salted.report(true).cacheHit()).isTrue();
		assertThat(job("{}", null).report(true).cacheHit()).as("never told without a salt").isNull();
	}

	@Test
	void densityAndTokenIdsFollowOneRuleEach() {
		assertThat(RequestMapper.density(0, "density")).isZero();
		assertThat(RequestMapper.density(1, "density")).isEqualTo(1);
		assertThatThrownBy(() -> RequestMapper.density(Double.NaN, "density"))
			.isInstanceOf(InvalidRequestException.class)
			.hasMessageContaining("[0, 1]");
		assertThat(RequestMapper.tokenIds(List.of(0, 9), "tokens", 10)).containsExactly(0, 9);
		assertThatThrownBy(() -> RequestMapper.tokenIds(List.of(0, 10), "tokens", 10)).isInstanceOfSatisfying(
				InvalidRequestException.class, (ex) -> assertThat(ex.param()).isEqualTo("tokens[1]"));
		assertThatThrownBy(() -> RequestMapper.tokenIds(java.util.Arrays.asList(1, null), "prompt", 10))
			.isInstanceOfSatisfying(InvalidRequestException.class,
					(ex) -> assertThat(ex.param()).isEqualTo("prompt[1]"));
	}

	/**
	 * A completion's prompt is one prompt (text, or token ids) or several (texts, or
	 * token-id arrays), never a mix.
	 */
	@Test
	void aCompletionPromptIsOneOrSeveral() {
		assertThat(RequestMapper.prompts("Hi")).containsExactly("Hi");
		assertThat(RequestMapper.prompts(List.of(1, 2))).containsExactly(List.of(1, 2));
		assertThat(RequestMapper.prompts(List.of("a", "b"))).containsExactly("a", "b");
		assertThat(RequestMapper.prompts(List.of(List.of(1), List.of(2, 3)))).containsExactly(List.of(1),
				List.of(2, 3));
		assertThat(RequestMapper.prompts(List.of())).containsExactly(List.of());
		assertThat(RequestMapper.prompts(null)).hasSize(1).containsNull();
		for (List<?> mixed : List.of(List.of("a", List.of(1)), List.of(List.of(1), "a"), List.of("a", 1))) {
			assertThatThrownBy(() -> RequestMapper.prompts(mixed)).as("%s", mixed)
				.isInstanceOfSatisfying(InvalidRequestException.class,
						(ex) -> assertThat(ex.param()).isEqualTo("prompt"))
				.hasMessageContaining("not a mix");
		}
	}

	@Test
	void chatMessagesAreCheckedAndFlattened() {
		ChatCompletionRequest request = JSON.readValue(
				"""
						{"messages": [{"role": "developer", "content": "Be brief."},
						              {"role": "user", "content": [{"type": "text", "text": "Hi, "}, {"type": "text", "text": "you"}]},
						              {"role": "assistant"}]}""",
				ChatCompletionRequest.class);
		assertThat(RequestMapper.messages(request.messages())).containsExactly(
				new ChatTemplate.Message("system", "Be brief."), new ChatTemplate.Message("user", "Hi, you"),
				new ChatTemplate.Message("assistant", ""));
		assertThatThrownBy(() -> RequestMapper.messages(List.of())).isInstanceOfSatisfying(
				InvalidRequestException.class, (ex) -> assertThat(ex.param()).isEqualTo("messages"));
		assertThatThrownBy(() -> RequestMapper.messages(JSON.readValue("""
				{"messages": [{"role": "user", "content": "a"}, {"role": "root", "content": "b"}]}""",
				ChatCompletionRequest.class)
			.messages())).isInstanceOfSatisfying(InvalidRequestException.class,
					(ex) -> assertThat(ex.param()).isEqualTo("messages[1].role"));
		assertThatThrownBy(() -> RequestMapper.messages(JSON.readValue("""
				{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}""",
				ChatCompletionRequest.class)
			.messages())).isInstanceOfSatisfying(InvalidRequestException.class,
					(ex) -> assertThat(ex.param()).isEqualTo("messages[0].content"));
		for (String role : List.of("system", "developer", "user", "tool")) {
			assertThatThrownBy(() -> RequestMapper.messages(JSON.readValue("""
					{"messages": [{"role": "user", "content": "a"}, {"role": "%s", "content": null}]}"""
				.formatted(role), ChatCompletionRequest.class).messages())).as(role)
				.isInstanceOfSatisfying(InvalidRequestException.class,
						(ex) -> assertThat(ex.param()).isEqualTo("messages[1].content"));
		}
	}

	@Test
	void aLogitBiasReachesTheSamplingParametersByTokenId() {
		GenerationJob job = job("{\"logit_bias\": {\"17\": -100, \"3\": 2.5}}", null).job();
		assertThat(job.params().logitBias()).containsExactlyInAnyOrderEntriesOf(Map.of(17, -100f, 3, 2.5f));
		assertThat(job.params().withSeed(9).logitBias()).as("each of n choices keeps it")
			.isEqualTo(job.params().logitBias());
		assertThat(job("{}", null).job().params().logitBias()).isEmpty();
	}

	@Test
	void aLogitBiasIsCheckedKeyByKey() {
		for (String bias : List.of("{\"x\": 1}", "{\"-1\": 1}", "{\"1000\": 1}", "{\"99999999999\": 1}",
				"{\"1\": 100.5}", "{\"1\": -101}", "{\"1\": null}", "{\"1\": 1, \"01\": 2}")) {
			assertThat(field("{\"logit_bias\": " + bias + "}")).as(bias).isEqualTo("logit_bias");
		}
		StringBuilder many = new StringBuilder("{");
		for (int id = 0; id <= SamplingParams.MAX_LOGIT_BIAS; id++) {
			many.append((id == 0) ? "" : ", ").append('"').append(id).append("\": 1");
		}
		assertThat(field("{\"logit_bias\": " + many + "}}")).isEqualTo("logit_bias");
		assertThat(job("{\"logit_bias\": {\"999\": 100, \"0\": -100}}", null).job().params().logitBias())
			.as("the ends of both ranges")
			.hasSize(2);
	}

	@Test
	void fieldsTheServerDoesNotHonourAreRefusedNotIgnored() {
		assertThatThrownBy(() -> RequestMapper.supported(completion("{\"echo\": true, \"suffix\": \"x\"}")))
			.isInstanceOfSatisfying(InvalidRequestException.class, (ex) -> {
				assertThat(ex.param()).isEqualTo("echo");
				assertThat(ex.code()).isEqualTo("unsupported_parameter");
			});
		// best_of: from n to the most choices, and not streamed beyond n
		for (String refused : List.of("{\"n\": 3, \"best_of\": 2}", "{\"best_of\": 9}", "{\"best_of\": 0}",
				"{\"best_of\": 2, \"stream\": true}")) {
			assertThatThrownBy(() -> RequestMapper.supported(completion(refused))).as(refused)
				.isInstanceOfSatisfying(InvalidRequestException.class,
						(ex) -> assertThat(ex.param()).isEqualTo("best_of"));
		}
		// a suffix depends on the model's vocabulary: RequestMapper.prompt
		for (String accepted : List.of("{}", "{\"echo\": false, \"suffix\": \"end\", \"best_of\": 1}",
				"{\"echo\": true, \"suffix\": \"\"}", "{\"echo\": true, \"logprobs\": 1}", "{\"n\": 3, \"best_of\": 3}",
				"{\"best_of\": 3}", "{\"n\": 2, \"best_of\": 8}", "{\"n\": 2, \"best_of\": 2, \"stream\": true}")) {
			RequestMapper.supported(completion(accepted));
		}
		for (Map.Entry<String, String> refused : Map
			.of("{\"response_format\": {\"type\": \"json_object\"}}", "response_format", "{\"response_format\": {}}",
					"response_format", "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
					"tools", "{\"tool_choice\": \"required\"}", "tool_choice",
					"{\"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"f\"}}}", "tool_choice",
					"{\"functions\": [{\"name\": \"f\"}]}", "functions", "{\"function_call\": {\"name\": \"f\"}}",
					"function_call", "{\"modalities\": [\"text\", \"audio\"]}", "modalities",
					"{\"audio\": {\"voice\": \"alloy\", \"format\": \"wav\"}}", "audio")
			.entrySet()) {
			assertThatThrownBy(
					() -> RequestMapper.supported(JSON.readValue(refused.getKey(), ChatCompletionRequest.class)))
				.as(refused.getKey())
				.isInstanceOfSatisfying(InvalidRequestException.class,
						(ex) -> assertThat(ex.param()).isEqualTo(refused.getValue()));
		}
		for (String accepted : List.of("{}",
				"{\"response_format\": {\"type\": \"text\"}, \"tools\": [], "
						+ "\"tool_choice\": \"none\", \"functions\": [], \"function_call\": \"auto\", "
						+ "\"modalities\": [\"text\"]}")) {
			RequestMapper.supported(JSON.readValue(accepted, ChatCompletionRequest.class));
		}
	}

	@Test
	void stopTokenIdsReachTheSamplingParametersInTheVocabulary() {
		assertThat(job("{\"stop_token_ids\": [5, 999]}", null).job().params().stopTokenIds()).containsExactly(5, 999);
		assertThat(job("{}", null).job().params().stopTokenIds()).isEmpty();
		assertThat(field("{\"stop_token_ids\": [5, 1000]}")).isEqualTo("stop_token_ids[1]");
		assertThat(field("{\"stop_token_ids\": [-1]}")).isEqualTo("stop_token_ids[0]");
		assertThat(field("{\"stop_token_ids\": [null]}")).isEqualTo("stop_token_ids[0]");
		StringBuilder many = new StringBuilder("[0");
		for (int id = 1; id <= RequestMapper.MAX_STOP_TOKEN_IDS; id++) {
			many.append(", ").append(id);
		}
		assertThat(field("{\"stop_token_ids\": " + many + "]}")).isEqualTo("stop_token_ids");
	}

	@Test
	void minTokensIsAtMostTheBudget() {
		assertThat(job("{\"min_tokens\": 5, \"max_tokens\": 5}", null).job().params().minTokens()).isEqualTo(5);
		assertThat(job("{}", null).job().params().minTokens()).isZero();
		assertThat(field("{\"min_tokens\": 6, \"max_tokens\": 5}")).isEqualTo("min_tokens");
		assertThat(field("{\"min_tokens\": -1}")).isEqualTo("min_tokens");
	}

	@Test
	void structuredOutputFieldsAreRefused() {
		for (String field : List.of("guided_json", "guided_regex", "guided_choice", "guided_grammar",
				"structured_outputs")) {
			String json = "{\"" + field + "\": {\"type\": \"object\"}}";
			assertThatThrownBy(() -> RequestMapper.supported(completion(json))).as(field)
				.isInstanceOfSatisfying(InvalidRequestException.class, (ex) -> assertThat(ex.param()).isEqualTo(field));
			assertThatThrownBy(() -> RequestMapper.supported(JSON.readValue(json, ChatCompletionRequest.class)))
				.as(field)
				.isInstanceOfSatisfying(InvalidRequestException.class, (ex) -> assertThat(ex.param()).isEqualTo(field));
		}
	}

	@Test
	void streamOptionsBelongToAStream() {
		String options = "\"stream_options\": {\"include_usage\": true}";
		for (String json : List.of("{" + options + "}", "{\"stream\": false, " + options + "}")) {
			assertThatThrownBy(() -> RequestMapper.supported(completion(json))).as(json)
				.isInstanceOfSatisfying(InvalidRequestException.class,
						(ex) -> assertThat(ex.param()).isEqualTo("stream_options"));
			assertThatThrownBy(() -> RequestMapper.supported(JSON.readValue(json, ChatCompletionRequest.class)))
				.as(json)
				.isInstanceOfSatisfying(InvalidRequestException.class,
						(ex) -> assertThat(ex.param()).isEqualTo("stream_options"));
		}
		RequestMapper.supported(completion("{\"stream\": true, " + options + "}"));
		RequestMapper.supported(completion("{\"stream\": false, \"stream_options\": null}"));
	}

}

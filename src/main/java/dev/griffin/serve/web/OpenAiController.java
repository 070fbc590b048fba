package dev.griffin.serve.web;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.ExampleObject;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.responses.ApiResponse;
import io.swagger.v3.oas.annotations.tags.Tag;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

import dev.griffin.serve.config.GriffinProperties;
import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.ContextLengthExceededException;
import dev.griffin.serve.generation.GeneratedToken;
import dev.griffin.serve.generation.GenerationEvent;
import dev.griffin.serve.generation.GenerationJob;
import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.GriffinSettings;
import dev.griffin.serve.generation.InferenceScheduler;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.ModelService;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.generation.StreamStalledException;
import dev.griffin.serve.web.ApiTypes.AssistantMessage;
import dev.griffin.serve.web.ApiTypes.ChatChoice;
import dev.griffin.serve.web.ApiTypes.ChatChunkChoice;
import dev.griffin.serve.web.ApiTypes.ChatCompletionChunk;
import dev.griffin.serve.web.ApiTypes.ChatCompletionRequest;
import dev.griffin.serve.web.ApiTypes.ChatCompletionResponse;
import dev.griffin.serve.web.ApiTypes.ChatDelta;
import dev.griffin.serve.web.ApiTypes.ChatLogprobs;
import dev.griffin.serve.web.ApiTypes.CompletionChoice;
import dev.griffin.serve.web.ApiTypes.CompletionChunk;
import dev.griffin.serve.web.ApiTypes.CompletionLogprobs;
import dev.griffin.serve.web.ApiTypes.CompletionRequest;
import dev.griffin.serve.web.ApiTypes.CompletionResponse;
import dev.griffin.serve.web.ApiTypes.GriffinReport;
import dev.griffin.serve.web.ApiTypes.ModelCard;
import dev.griffin.serve.web.ApiTypes.ModelList;
import dev.griffin.serve.web.ApiTypes.TokenLogprob;
import dev.griffin.serve.web.ApiTypes.TopLogprob;
import dev.griffin.serve.web.ApiTypes.Usage;

/**
 * OpenAI-compatible completions and chat completions, streamed over Server-Sent Events or
 * returned whole. Validation and tokenisation happen here; generation runs on the
 * inference scheduler.
 */
@RestController
@Tag(name = "OpenAI-compatible API", description = "Text and chat completions with GRIFFIN expert selection")
public class OpenAiController {

	private static final String DONE = "[DONE]";

	private final ModelService models;

	private final InferenceScheduler scheduler;

	private final RequestMapper mapper;

	private final GriffinProperties properties;

	public OpenAiController(ModelService models, InferenceScheduler scheduler, GriffinProperties properties) {
		this.models = models;
		this.scheduler = scheduler;
		this.mapper = new RequestMapper(properties);
		this.properties = properties;
	}

	@GetMapping(value = "/v1/models", produces = MediaType.APPLICATION_JSON_VALUE)
	@Operation(summary = "List the served models")
	public ModelList models() {
		int context = this.models.model().dense().config().maxPositionEmbeddings();
		return new ModelList("list",
				this.models.modelIds()
					.stream()
					.map((id) -> new ModelCard(id, "model", 0, "griffin-serve", context))
					.toList());
	}

	@PostMapping(value = "/v1/completions", consumes = MediaType.APPLICATION_JSON_VALUE,
			produces = { MediaType.APPLICATION_JSON_VALUE, MediaType.TEXT_EVENT_STREAM_VALUE })
	@Operation(summary = "Create a text completion",
			description = "With \"stream\": true the response is text/event-stream: one `data: {json}` chunk per token, "
					+ "a final chunk with finish_reason, a usage chunk if stream_options.include_usage, then `data: [DONE]`.",
			requestBody = @io.swagger.v3.oas.annotations.parameters.RequestBody(content = @Content(
					schema = @Schema(implementation = CompletionRequest.class),
					examples = @ExampleObject(name = "greedy",
							value = "{\"model\": \"SmolLM2-135M-Instruct\", \"prompt\": \"The capital of France is\", "
									+ "\"max_tokens\": 16, \"temperature\": 0, \"griffin\": {\"density\": 0.5, \"method\": \"topk\"}}"))))
	@ApiResponse(responseCode = "200", description = "The completion (JSON) or its stream (SSE)",
			content = {
					@Content(mediaType = MediaType.APPLICATION_JSON_VALUE,
							schema = @Schema(implementation = CompletionResponse.class)),
					@Content(mediaType = MediaType.TEXT_EVENT_STREAM_VALUE,
							schema = @Schema(implementation = CompletionChunk.class)) })
	@GenerationErrorResponses
	public Mono<ResponseEntity<Object>> completions(@RequestBody CompletionRequest request,
			ServerWebExchange exchange) {
		LoadedModel model = checkModel(request.model());
		Admission admission = AdmissionFilter.admit(this.scheduler, exchange);
		return this.scheduler.prepare(admission, () -> completions(request, model, admission))
			.flatMap((response) -> response);
	}

	private Mono<ResponseEntity<Object>> completions(CompletionRequest request, LoadedModel model,
			Admission admission) {
		int[] prompt = RequestMapper.prompt(request.prompt(), model);
		Integer logprobs = request.logprobs();
		RequestMapper.require(logprobs == null || (logprobs >= 0 && logprobs <= 5), "logprobs",
				"logprobs must be in [0, 5], got " + logprobs);
		Job job = job(prompt, model,
				new RequestMapper.Sampling(request.maxTokens(), request.temperature(), request.topP(), request.topK(),
						request.minP(), request.presencePenalty(), request.frequencyPenalty(),
						request.repetitionPenalty(), request.seed(), request.stop(), request.ignoreEos()),
				request.griffin(), request.n(), (logprobs == null) ? -1 : logprobs, "prompt", request.cacheSalt(),
				admission);
		String id = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
		long created = Instant.now().getEpochSecond();
		String modelId = this.models.modelId();
		Flux<GenerationEvent> events = this.scheduler.submit(admission, job.job());
		if (Boolean.TRUE.equals(request.stream())) {
			boolean includeUsage = request.streamOptions() != null
					&& Boolean.TRUE.equals(request.streamOptions().includeUsage());
			AtomicInteger generated = new AtomicInteger();
			Flux<Object> chunks = events.concatMap((event) -> {
				if (event instanceof GenerationEvent.Token token) {
					return Flux
						.just(new CompletionChunk(id, "text_completion", created, modelId,
								List.of(new CompletionChoice(token.choice(), token.token().text(),
										completionLogprobs(List.of(token.token()), logprobs, model), null)),
								null, null));
				}
				if (event instanceof GenerationEvent.Finished finished) {
					return Flux.just(finished(generated, finished,
							new CompletionChunk(id, "text_completion", created, modelId,
									List.of(new CompletionChoice(finished.choice(), "", null,
											finished.result().finishReason().wireName())),
									null, job.report(finished.result().cacheHit()))));
				}
				return Flux.empty();
			});
			return Mono.just(stream(chunks, generated, includeUsage, prompt.length,
					(usage) -> new CompletionChunk(id, "text_completion", created, modelId, List.of(), usage, null)));
		}
		return collect(events, job.job().choices()).map((choices) -> {
			List<CompletionChoice> out = new ArrayList<>();
			int generated = 0;
			boolean hit = false;
			for (Choice c : choices) {
				out.add(new CompletionChoice(c.index, c.result.text(), completionLogprobs(c.tokens, logprobs, model),
						c.result.finishReason().wireName()));
				generated += c.result.tokens().length;
				hit |= c.result.cacheHit();
			}
			return ResponseEntity.ok()
				.contentType(MediaType.APPLICATION_JSON)
				.body(new CompletionResponse(id, "text_completion", created, modelId, out,
						new Usage(prompt.length, generated, prompt.length + generated), job.report(hit)));
		});
	}

	@PostMapping(value = "/v1/chat/completions", consumes = MediaType.APPLICATION_JSON_VALUE,
			produces = { MediaType.APPLICATION_JSON_VALUE, MediaType.TEXT_EVENT_STREAM_VALUE })
	@Operation(summary = "Create a chat completion",
			description = "Messages are rendered with the model's chat template. With \"stream\": true the response is "
					+ "text/event-stream: a role chunk, one chunk per token, a final chunk with finish_reason, a usage chunk "
					+ "if stream_options.include_usage, then `data: [DONE]`.",
			requestBody = @io.swagger.v3.oas.annotations.parameters.RequestBody(content = @Content(
					schema = @Schema(implementation = ChatCompletionRequest.class),
					examples = @ExampleObject(name = "chat",
							value = "{\"model\": \"SmolLM2-135M-Instruct\", \"messages\": [{\"role\": \"user\", "
									+ "\"content\": \"What is the capital of France?\"}], \"max_tokens\": 32, "
									+ "\"temperature\": 0}"))))
	@ApiResponse(responseCode = "200", description = "The chat completion (JSON) or its stream (SSE)",
			content = {
					@Content(mediaType = MediaType.APPLICATION_JSON_VALUE,
							schema = @Schema(implementation = ChatCompletionResponse.class)),
					@Content(mediaType = MediaType.TEXT_EVENT_STREAM_VALUE,
							schema = @Schema(implementation = ChatCompletionChunk.class)) })
	@GenerationErrorResponses
	public Mono<ResponseEntity<Object>> chatCompletions(@RequestBody ChatCompletionRequest request,
			ServerWebExchange exchange) {
		LoadedModel model = checkModel(request.model());
		Admission admission = AdmissionFilter.admit(this.scheduler, exchange);
		return this.scheduler.prepare(admission, () -> chatCompletions(request, model, admission))
			.flatMap((response) -> response);
	}

	private Mono<ResponseEntity<Object>> chatCompletions(ChatCompletionRequest request, LoadedModel model,
			Admission admission) {
		int[] prompt = this.mapper.chat(request.messages(), model, true);
		boolean logprobs = Boolean.TRUE.equals(request.logprobs());
		Integer top = request.topLogprobs();
		RequestMapper.require(top == null || (top >= 0 && top <= 20), "top_logprobs",
				"top_logprobs must be in [0, 20], got " + top);
		RequestMapper.require(top == null || logprobs, "top_logprobs", "top_logprobs needs logprobs: true");
		Integer maxTokens = (request.maxCompletionTokens() != null) ? request.maxCompletionTokens()
				: request.maxTokens();
		Job job = job(prompt, model,
				new RequestMapper.Sampling(maxTokens, request.temperature(), request.topP(), request.topK(),
						request.minP(), request.presencePenalty(), request.frequencyPenalty(),
						request.repetitionPenalty(), request.seed(), request.stop(), request.ignoreEos()),
				request.griffin(), request.n(), logprobs ? ((top == null) ? 0 : top) : -1, "messages",
				request.cacheSalt(), admission);
		String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
		long created = Instant.now().getEpochSecond();
		String modelId = this.models.modelId();
		Flux<GenerationEvent> events = this.scheduler.submit(admission, job.job());
		if (Boolean.TRUE.equals(request.stream())) {
			boolean includeUsage = request.streamOptions() != null
					&& Boolean.TRUE.equals(request.streamOptions().includeUsage());
			AtomicInteger generated = new AtomicInteger();
			Flux<Object> chunks = events.concatMap((event) -> {
				if (event instanceof GenerationEvent.Started started) {
					return Flux.just(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
							List.of(new ChatChunkChoice(started.choice(), new ChatDelta("assistant", ""), null, null)),
							null, null));
				}
				if (event instanceof GenerationEvent.Token token) {
					return Flux
						.just(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
								List.of(new ChatChunkChoice(token.choice(), new ChatDelta(null, token.token().text()),
										logprobs ? chatLogprobs(List.of(token.token()), model) : null, null)),
								null, null));
				}
				GenerationEvent.Finished finished = (GenerationEvent.Finished) event;
				return Flux.just(finished(generated, finished,
						new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
								List.of(new ChatChunkChoice(finished.choice(), new ChatDelta(null, null), null,
										finished.result().finishReason().wireName())),
								null, job.report(finished.result().cacheHit()))));
			});
			return Mono
				.just(stream(chunks, generated, includeUsage, prompt.length, (usage) -> new ChatCompletionChunk(id,
						"chat.completion.chunk", created, modelId, List.of(), usage, null)));
		}
		return collect(events, job.job().choices()).map((choices) -> {
			List<ChatChoice> out = new ArrayList<>();
			int generated = 0;
			boolean hit = false;
			for (Choice c : choices) {
				out.add(new ChatChoice(c.index, new AssistantMessage("assistant", c.result.text()),
						logprobs ? chatLogprobs(c.tokens, model) : null, c.result.finishReason().wireName()));
				generated += c.result.tokens().length;
				hit |= c.result.cacheHit();
			}
			return ResponseEntity.ok()
				.contentType(MediaType.APPLICATION_JSON)
				.body(new ChatCompletionResponse(id, "chat.completion", created, modelId, out,
						new Usage(prompt.length, generated, prompt.length + generated), job.report(hit)));
		});
	}

	private LoadedModel checkModel(String model) {
		RequestMapper.require(model != null && !model.isBlank(), "model", "model is required");
		return RequestMapper.model(this.models, model);
	}

	/**
	 * A validated job and how to report its GRIFFIN settings.
	 *
	 * @param ownCache whether the request's cache entries are its own (an API key or a
	 * cache_salt); only then is a cache hit reported, so nobody learns what another
	 * client sent
	 */
	private record Job(GenerationJob job, GriffinSettings griffin, boolean ownCache) {

		GriffinReport report(boolean cacheHit) {
			return new GriffinReport(this.griffin.density(),
					this.griffin.isDense() ? "dense" : this.griffin.method().wireName(),
					this.ownCache ? cacheHit : null);
		}

	}

	private Job job(int[] prompt, LoadedModel model, RequestMapper.Sampling sampling,
			ApiTypes.GriffinOptions griffinOptions, Integer n, int topLogprobs, String promptField, String cacheSalt,
			Admission admission) {
		int context = model.dense().config().maxPositionEmbeddings();
		SamplingParams params = this.mapper.sampling(sampling, prompt.length, context);
		try {
			Generator.checkContextLength(prompt.length, params.maxNewTokens(), context);
		}
		catch (ContextLengthExceededException ex) {
			// the same check the scheduler makes, here to name the request field
			throw new InvalidRequestException(promptField, ex.getMessage(), "context_length_exceeded");
		}
		GriffinSettings griffin = this.mapper.griffin(griffinOptions);
		int choices = RequestMapper.choices(n);
		RequestMapper.require(cacheSalt == null || (!cacheSalt.isEmpty() && cacheSalt.length() <= 256), "cache_salt",
				"cache_salt must be 1 to 256 characters");
		String apiKey = admission.tenant();
		String tenantSalt = (apiKey == null) ? null
				: this.properties.security().tenantSalts().getOrDefault(apiKey, "key:" + apiKey);
		String salt = (cacheSalt == null) ? tenantSalt
				: ((tenantSalt != null) ? tenantSalt : "") + "|salt:" + cacheSalt;
		this.scheduler.chargeTokens(admission, prompt.length + (long) params.maxNewTokens() * choices);
		return new Job(new GenerationJob(prompt, params, griffin, choices, topLogprobs,
				RequestMapper.useCache(griffinOptions), salt, apiKey), griffin, salt != null);
	}

	/**
	 * SSE framing: chunks as {@code data: {json}}, the usage chunk if asked,
	 * {@code data: [DONE]}; keep-alive comments while the stream waits; an error after
	 * the first byte as a {@code data: {"error": ...}} event followed by [DONE].
	 */
	private static Object finished(AtomicInteger generated, GenerationEvent.Finished finished, Object chunk) {
		generated.addAndGet(finished.result().tokens().length);
		return chunk;
	}

	private ResponseEntity<Object> stream(Flux<Object> chunks, AtomicInteger generated, boolean includeUsage,
			int promptTokens, Function<Usage, Object> usageChunk) {
		Flux<ServerSentEvent<Object>> data = chunks.map((chunk) -> ServerSentEvent.<Object>builder(chunk).build())
			.concatWith(Flux.defer(() -> includeUsage ? Flux.just(ServerSentEvent
				.<Object>builder(
						usageChunk.apply(new Usage(promptTokens, generated.get(), promptTokens + generated.get())))
				.build()) : Flux.empty()))
			// a stalled reader would not read an error event either: its
			// connection is dropped
			.onErrorResume((error) -> !(error instanceof StreamStalledException),
					(error) -> Flux.just(ServerSentEvent.<Object>builder(OpenAiErrorHandler.envelope(error)).build()))
			.concatWith(Flux.just(ServerSentEvent.<Object>builder(DONE).build()));
		Sinks.Empty<Void> done = Sinks.empty();
		Duration keepAlive = this.properties.generation().keepAlive();
		// a reader that is behind misses pings rather than failing the stream
		Flux<ServerSentEvent<Object>> pings = Flux.interval(keepAlive)
			.onBackpressureDrop()
			.map((tick) -> ServerSentEvent.<Object>builder().comment("keep-alive").build())
			.takeUntilOther(done.asMono());
		Flux<ServerSentEvent<Object>> body = Flux.merge(data.doFinally((signal) -> done.tryEmitEmpty()), pings);
		return ResponseEntity.ok()
			.contentType(MediaType.TEXT_EVENT_STREAM)
			.header("Cache-Control", "no-cache")
			.header("X-Accel-Buffering", "no")
			.body(body);
	}

	/** One finished choice with its tokens, for non-streaming responses. */
	private record Choice(int index, Generator.Result result, List<GeneratedToken> tokens) {

	}

	private static Mono<List<Choice>> collect(Flux<GenerationEvent> events, int choices) {
		return events.collectList().map((list) -> {
			Map<Integer, List<GeneratedToken>> tokens = new HashMap<>();
			Map<Integer, Generator.Result> results = new LinkedHashMap<>();
			for (GenerationEvent event : list) {
				if (event instanceof GenerationEvent.Token token) {
					tokens.computeIfAbsent(token.choice(), (k) -> new ArrayList<>()).add(token.token());
				}
				else if (event instanceof GenerationEvent.Finished finished) {
					results.put(finished.choice(), finished.result());
				}
			}
			List<Choice> out = new ArrayList<>();
			for (int i = 0; i < choices; i++) {
				Generator.Result result = results.get(i);
				if (result == null) {
					throw new IllegalStateException("generation of choice " + i + " did not finish");
				}
				out.add(new Choice(i, result, tokens.getOrDefault(i, List.of())));
			}
			return out;
		});
	}

	private static CompletionLogprobs completionLogprobs(List<GeneratedToken> tokens, Integer logprobs,
			LoadedModel model) {
		if (logprobs == null) {
			return null;
		}
		List<String> texts = new ArrayList<>();
		List<Float> values = new ArrayList<>();
		List<Map<String, Float>> tops = new ArrayList<>();
		List<Integer> offsets = new ArrayList<>();
		int offset = 0;
		for (GeneratedToken token : tokens) {
			texts.add(tokenText(model, token.id()));
			values.add(token.logprob());
			Map<String, Float> top = new LinkedHashMap<>();
			token.topLogprobs().forEach((alternative) -> top.putIfAbsent(alternative.token(), alternative.logprob()));
			tops.add(top);
			offsets.add(offset);
			offset += token.text().length();
		}
		return new CompletionLogprobs(texts, values, tops, offsets);
	}

	private static ChatLogprobs chatLogprobs(List<GeneratedToken> tokens, LoadedModel model) {
		List<TokenLogprob> content = new ArrayList<>();
		for (GeneratedToken token : tokens) {
			List<TopLogprob> top = token.topLogprobs()
				.stream()
				.map((alternative) -> new TopLogprob(alternative.token(), alternative.logprob(),
						bytes(model.tokenizer().tokenBytes(alternative.id()))))
				.toList();
			content.add(new TokenLogprob(tokenText(model, token.id()), token.logprob(),
					bytes(model.tokenizer().tokenBytes(token.id())), top));
		}
		return new ChatLogprobs(content);
	}

	private static String tokenText(LoadedModel model, int id) {
		return new String(model.tokenizer().tokenBytes(id), StandardCharsets.UTF_8);
	}

	private static List<Integer> bytes(byte[] bytes) {
		List<Integer> out = new ArrayList<>(bytes.length);
		for (byte b : bytes) {
			out.add(b & 0xFF);
		}
		return out;
	}

}

package dev.griffin.serve.web;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.ExampleObject;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.responses.ApiResponse;
import io.swagger.v3.oas.annotations.tags.Tag;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.GenerationEvent;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.web.ApiTypes.AssistantMessage;
import dev.griffin.serve.web.ApiTypes.ChatChoice;
import dev.griffin.serve.web.ApiTypes.ChatChunkChoice;
import dev.griffin.serve.web.ApiTypes.ChatCompletionChunk;
import dev.griffin.serve.web.ApiTypes.ChatCompletionRequest;
import dev.griffin.serve.web.ApiTypes.ChatCompletionResponse;
import dev.griffin.serve.web.ApiTypes.ChatDelta;
import dev.griffin.serve.web.ApiTypes.Usage;

/**
 * OpenAI's chat completions: messages rendered with the model's chat template, streamed
 * over Server-Sent Events or returned whole.
 */
@RestController
@Tag(name = "OpenAI-compatible API")
public class ChatCompletionsController {

	private static final String CHUNK = "chat.completion.chunk";

	private final Completions completions;

	private final RequestMapper mapper;

	private final SseStream sse;

	ChatCompletionsController(Completions completions, RequestMapper mapper, SseStream sse) {
		this.completions = completions;
		this.mapper = mapper;
		this.sse = sse;
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
		return this.completions.handle(request.model(), exchange,
				(model, admission) -> complete(request, model, admission));
	}

	private Mono<ResponseEntity<Object>> complete(ChatCompletionRequest request, LoadedModel model,
			Admission admission) {
		RequestMapper.supported(request);
		int[] prompt = this.mapper.chat(request.messages(), model, true);
		boolean logprobs = Boolean.TRUE.equals(request.logprobs());
		Integer top = request.topLogprobs();
		RequestMapper.require(top == null || logprobs, "top_logprobs", "top_logprobs needs logprobs: true");
		Integer maxTokens = (request.maxCompletionTokens() != null) ? request.maxCompletionTokens()
				: request.maxTokens();
		RequestMapper.Mapped mapped = this.mapper.job(request, prompt, model.dense().config().maxPositionEmbeddings(),
				model.dense().config().vocabularySize(), maxTokens, logprobs ? ((top == null) ? 0 : top) : -1,
				"messages", admission.tenant());
		String id = Completions.id("chatcmpl-");
		long created = System.currentTimeMillis() / 1000;
		String modelId = this.completions.modelId();
		Flux<GenerationEvent> events = this.completions.submit(admission, mapped);
		if (Boolean.TRUE.equals(request.stream())) {
			AtomicInteger generated = new AtomicInteger();
			Flux<ChatCompletionChunk> chunks = events.map((event) -> {
				if (event instanceof GenerationEvent.Started started) {
					return chunk(id, created, modelId,
							new ChatChunkChoice(started.choice(), new ChatDelta("assistant", ""), null, null), null);
				}
				if (event instanceof GenerationEvent.Token token) {
					return chunk(id, created, modelId,
							new ChatChunkChoice(token.choice(), new ChatDelta(null, token.token().text()),
									logprobs ? Logprobs.chat(List.of(token.token()), model.tokenizer()) : null, null),
							null);
				}
				GenerationEvent.Finished finished = (GenerationEvent.Finished) event;
				generated.addAndGet(finished.result().tokens().length);
				return chunk(id, created, modelId,
						new ChatChunkChoice(finished.choice(), new ChatDelta(null, null), null,
								finished.result().finishReason().wireName()),
						mapped.report(finished.result().cacheHit()));
			});
			return Mono.just(this.sse.respond(chunks, request.includeUsage() ? () -> new ChatCompletionChunk(id, CHUNK,
					created, modelId, List.of(), Usage.of(prompt.length, generated.get()), null) : null));
		}
		return Completions.collect(events, mapped.job().choices()).map((choices) -> {
			List<ChatChoice> out = choices.stream()
				.map((c) -> new ChatChoice(c.index(), new AssistantMessage("assistant", c.result().text()),
						logprobs ? Logprobs.chat(c.tokens(), model.tokenizer()) : null,
						c.result().finishReason().wireName()))
				.toList();
			return Completions.json(new ChatCompletionResponse(id, "chat.completion", created, modelId, out,
					Usage.of(prompt.length, Completions.generatedTokens(choices)),
					mapped.report(Completions.cacheHit(choices))));
		});
	}

	private static ChatCompletionChunk chunk(String id, long created, String modelId, ChatChunkChoice choice,
			ApiTypes.GriffinReport report) {
		return new ChatCompletionChunk(id, CHUNK, created, modelId, List.of(choice), null, report);
	}

}

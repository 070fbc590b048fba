package dev.griffin.serve.web;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

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
import dev.griffin.serve.generation.GeneratedToken;
import dev.griffin.serve.generation.GenerationEvent;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.web.ApiTypes.CompletionChoice;
import dev.griffin.serve.web.ApiTypes.CompletionChunk;
import dev.griffin.serve.web.ApiTypes.CompletionLogprobs;
import dev.griffin.serve.web.ApiTypes.CompletionRequest;
import dev.griffin.serve.web.ApiTypes.CompletionResponse;
import dev.griffin.serve.web.ApiTypes.Usage;

/** OpenAI's text completions, streamed over Server-Sent Events or returned whole. */
@RestController
@Tag(name = "OpenAI-compatible API", description = "Text and chat completions with GRIFFIN expert selection")
public class CompletionsController {

	/**
	 * The most alternatives per token of the legacy {@code logprobs} field (OpenAI's).
	 */
	static final int MAX_LOGPROBS = 5;

	private static final String OBJECT = "text_completion";

	private final Completions completions;

	private final RequestMapper mapper;

	private final SseStream sse;

	CompletionsController(Completions completions, RequestMapper mapper, SseStream sse) {
		this.completions = completions;
		this.mapper = mapper;
		this.sse = sse;
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
		return this.completions.handle(request.model(), exchange,
				(model, admission) -> complete(request, model, admission));
	}

	private Mono<ResponseEntity<Object>> complete(CompletionRequest request, LoadedModel model, Admission admission) {
		RequestMapper.supported(request);
		int[] prompt = RequestMapper.prompt(request.prompt(), request.suffix(), model);
		Integer logprobs = request.logprobs();
		RequestMapper.require(logprobs == null || (logprobs >= 0 && logprobs <= MAX_LOGPROBS), "logprobs",
				"logprobs must be in [0, %d], got %d".formatted(MAX_LOGPROBS, logprobs));
		boolean echo = Boolean.TRUE.equals(request.echo());
		// echo with logprobs: the prompt's tokens are scored, and echoed as their text
		boolean scored = echo && logprobs != null;
		// best_of: that many choices, the n with the highest log-probability per token
		// returned
		int n = (request.n() != null) ? request.n() : 1;
		int bestOf = (request.bestOf() != null) ? request.bestOf() : n;
		int topLogprobs = (logprobs != null) ? logprobs : (bestOf > n) ? 0 : -1;
		RequestMapper.Mapped mapped = this.mapper.job(request, prompt, model.dense().config().maxPositionEmbeddings(),
				model.dense().config().vocabularySize(), request.maxTokens(), topLogprobs, "prompt", admission.tenant(),
				scored, bestOf);
		String echoed = echo ? RequestMapper.promptText(request.prompt(), prompt, model) : "";
		String id = Completions.id("cmpl-");
		long created = System.currentTimeMillis() / 1000;
		String modelId = this.completions.modelId();
		AtomicReference<List<GeneratedToken>> promptTokens = new AtomicReference<>(List.of());
		Flux<GenerationEvent> events = this.completions.submit(admission, mapped).doOnNext((event) -> {
			if (event instanceof GenerationEvent.PromptScored prompted) {
				promptTokens.set(prompted.tokens());
			}
		});
		if (Boolean.TRUE.equals(request.stream())) {
			AtomicInteger generated = new AtomicInteger();
			// each choice's text so far: where a chunk's tokens start in it (text_offset)
			int[] sent = new int[bestOf];
			Flux<CompletionChunk> chunks = events.concatMap((event) -> {
				if (event instanceof GenerationEvent.Started started && echo) {
					// echo: the prompt comes first in each choice
					List<GeneratedToken> tokens = promptTokens.get();
					String text = scored ? text(tokens) : echoed;
					CompletionLogprobs values = logprobs(tokens, logprobs, model, sent[started.choice()]);
					sent[started.choice()] += text.length();
					return Flux.just(new CompletionChunk(id, OBJECT, created, modelId,
							List.of(new CompletionChoice(started.choice(), text, values, null)), null, null));
				}
				if (event instanceof GenerationEvent.Token token) {
					String text = token.token().text();
					CompletionLogprobs values = logprobs(List.of(token.token()), logprobs, model, sent[token.choice()]);
					sent[token.choice()] += text.length();
					return Flux.just(new CompletionChunk(id, OBJECT, created, modelId,
							List.of(new CompletionChoice(token.choice(), text, values, null)), null, null));
				}
				if (event instanceof GenerationEvent.Finished finished) {
					generated.addAndGet(finished.result().tokens().length);
					return Flux.just(new CompletionChunk(id, OBJECT, created, modelId,
							List.of(new CompletionChoice(finished.choice(), "", null,
									finished.result().finishReason().wireName())),
							null, mapped.report(finished.result().cacheHit())));
				}
				return Flux.empty();
			});
			return Mono.just(this.sse.respond(chunks, request.includeUsage() ? () -> new CompletionChunk(id, OBJECT,
					created, modelId, List.of(), Usage.of(prompt.length, generated.get()), null) : null));
		}
		return Completions.collect(events, mapped.job().choices()).map((choices) -> {
			List<GeneratedToken> echoedTokens = promptTokens.get();
			String before = scored ? text(echoedTokens) : echoed;
			List<Completions.Choice> kept = (bestOf > n) ? best(choices, n) : choices;
			List<CompletionChoice> out = new ArrayList<>();
			for (int i = 0; i < kept.size(); i++) {
				Completions.Choice c = kept.get(i);
				out.add(new CompletionChoice(i, before + c.result().text(),
						logprobs(concat(echoedTokens, c.tokens()), logprobs, model, 0),
						c.result().finishReason().wireName()));
			}
			return Completions.json(new CompletionResponse(id, OBJECT, created, modelId, out,
					Usage.of(prompt.length, Completions.generatedTokens(choices)),
					mapped.report(Completions.cacheHit(choices))));
		});
	}

	/**
	 * The n choices with the highest mean log-probability of their tokens (best_of), in
	 * that order; a choice without tokens ranks last, the earlier choice first among
	 * equals.
	 */
	static List<Completions.Choice> best(List<Completions.Choice> choices, int n) {
		return choices.stream()
			.sorted(Comparator.comparingDouble(CompletionsController::meanLogprob).reversed())
			.limit(n)
			.toList();
	}

	private static double meanLogprob(Completions.Choice choice) {
		double sum = 0;
		int count = 0;
		for (GeneratedToken token : choice.tokens()) {
			if (token.isToken()) {
				sum += token.logprob();
				count++;
			}
		}
		return (count == 0) ? Double.NEGATIVE_INFINITY : sum / count;
	}

	/** The text of scored prompt tokens. */
	private static String text(List<GeneratedToken> tokens) {
		StringBuilder text = new StringBuilder();
		tokens.forEach((token) -> text.append(token.text()));
		return text.toString();
	}

	private static List<GeneratedToken> concat(List<GeneratedToken> first, List<GeneratedToken> then) {
		List<GeneratedToken> all = new ArrayList<>(first);
		all.addAll(then);
		return all;
	}

	private static CompletionLogprobs logprobs(List<GeneratedToken> tokens, Integer logprobs, LoadedModel model,
			int start) {
		return (logprobs == null) ? null : Logprobs.completion(tokens, model.tokenizer(), start);
	}

}

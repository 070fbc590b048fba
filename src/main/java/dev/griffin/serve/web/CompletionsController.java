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
import dev.griffin.serve.web.ApiTypes.GriffinReport;
import dev.griffin.serve.web.ApiTypes.Usage;

/** OpenAI's text completions, streamed over Server-Sent Events or returned whole. */
@RestController
@Tag(name = "OpenAI-compatible API", description = "Text and chat completions with GRIFFIN expert selection")
public class CompletionsController {

	/**
	 * The most alternatives per token of the legacy {@code logprobs} field (OpenAI's).
	 */
	static final int MAX_LOGPROBS = 5;

	/**
	 * The most sequences one request runs: its prompts times its choices per prompt
	 * (best_of, or n). A request holds one slot of the server's bulkhead however many it
	 * runs.
	 */
	static final int MAX_SEQUENCES = 16;

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
		List<Object> texts = RequestMapper.prompts(request.prompt());
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
		RequestMapper.require(texts.size() <= MAX_SEQUENCES, "prompt",
				"a request has at most %d prompts, got %d".formatted(MAX_SEQUENCES, texts.size()));
		int topLogprobs = (logprobs != null) ? logprobs : (bestOf > n) ? 0 : -1;
		List<Prompt> prompts = new ArrayList<>();
		for (int i = 0; i < texts.size(); i++) {
			int[] ids = ids(texts, i, request.suffix(), model);
			RequestMapper.Mapped mapped = this.mapper.job(request, ids, model.dense().config().maxPositionEmbeddings(),
					model.dense().config().vocabularySize(), request.maxTokens(), topLogprobs, "prompt",
					admission.tenant(), scored, bestOf);
			// the first prompt's job has checked n and best_of
			RequestMapper.require(texts.size() * bestOf <= MAX_SEQUENCES, "prompt",
					"a request runs at most %d sequences (prompts x best_of, or x n), got %d prompts x %d"
						.formatted(MAX_SEQUENCES, texts.size(), bestOf));
			prompts.add(new Prompt(ids, mapped, echo ? RequestMapper.promptText(texts.get(i), ids, model) : "",
					new AtomicReference<>(List.of())));
		}
		List<Flux<GenerationEvent>> submitted = this.completions.submit(admission,
				prompts.stream().map(Prompt::mapped).toList());
		List<Flux<GenerationEvent>> events = new ArrayList<>();
		for (int i = 0; i < prompts.size(); i++) {
			AtomicReference<List<GeneratedToken>> scoredTokens = prompts.get(i).scored();
			events.add(submitted.get(i).doOnNext((event) -> {
				if (event instanceof GenerationEvent.PromptScored prompted) {
					scoredTokens.set(prompted.tokens());
				}
			}));
		}
		String id = Completions.id("cmpl-");
		long created = System.currentTimeMillis() / 1000;
		String modelId = this.completions.modelId();
		int promptTokens = prompts.stream().mapToInt((prompt) -> prompt.ids().length).sum();
		if (Boolean.TRUE.equals(request.stream())) {
			AtomicInteger generated = new AtomicInteger();
			List<Flux<CompletionChunk>> chunks = new ArrayList<>();
			for (int i = 0; i < prompts.size(); i++) {
				// prompt i's choices are indices i x n to i x n + n - 1 (OpenAI's order)
				chunks.add(chunks(prompts.get(i), events.get(i), i * bestOf, bestOf, echo, logprobs, scored, model,
						generated, new ChunkHeader(id, created, modelId)));
			}
			return Mono.just(this.sse.respond(Flux.merge(chunks), request.includeUsage() ? () -> new CompletionChunk(id,
					OBJECT, created, modelId, List.of(), Usage.of(promptTokens, generated.get()), null) : null));
		}
		List<Mono<List<Completions.Choice>>> collected = new ArrayList<>();
		for (int i = 0; i < prompts.size(); i++) {
			collected.add(Completions.collect(events.get(i), prompts.get(i).mapped().job().choices()));
		}
		return Flux.mergeSequential(collected).collectList().map((all) -> {
			List<CompletionChoice> out = new ArrayList<>();
			int generated = 0;
			for (int i = 0; i < prompts.size(); i++) {
				Prompt prompt = prompts.get(i);
				List<Completions.Choice> choices = all.get(i);
				generated += Completions.generatedTokens(choices);
				List<GeneratedToken> echoedTokens = prompt.scored().get();
				String before = scored ? text(echoedTokens) : prompt.echoed();
				// of several prompts, each choice says what ran for its own
				GriffinReport report = (prompts.size() > 1) ? prompt.mapped().report(Completions.cacheHit(choices))
						: null;
				for (Completions.Choice c : (bestOf > n) ? best(choices, n) : choices) {
					out.add(new CompletionChoice(out.size(), before + c.result().text(),
							logprobs(concat(echoedTokens, c.tokens()), logprobs, model, 0),
							c.result().finishReason().wireName(), report));
				}
			}
			GriffinReport report = (prompts.size() > 1) ? null
					: prompts.get(0).mapped().report(Completions.cacheHit(all.get(0)));
			return Completions.json(new CompletionResponse(id, OBJECT, created, modelId, out,
					Usage.of(promptTokens, generated), report));
		});
	}

	/**
	 * One prompt of a request: its token ids, job, echoed text, and scored tokens once
	 * known.
	 */
	private record Prompt(int[] ids, RequestMapper.Mapped mapped, String echoed,
			AtomicReference<List<GeneratedToken>> scored) {

	}

	/** What every chunk of a streamed completion carries. */
	private record ChunkHeader(String id, long created, String model) {

		CompletionChunk chunk(CompletionChoice choice, GriffinReport report) {
			return new CompletionChunk(this.id, OBJECT, this.created, this.model, List.of(choice), null, report);
		}

	}

	/** Prompt i's token ids; of several prompts, an error names which one. */
	private static int[] ids(List<Object> prompts, int i, String suffix, LoadedModel model) {
		try {
			return RequestMapper.prompt(prompts.get(i), suffix, model);
		}
		catch (InvalidRequestException ex) {
			if (prompts.size() == 1 || ex.param() == null || !ex.param().startsWith("prompt")) {
				throw ex;
			}
			// "prompt" or a token's "prompt[j]" becomes "prompt[i]" or "prompt[i][j]"
			String param = "prompt[" + i + "]" + ex.param().substring("prompt".length());
			throw new InvalidRequestException(param, "prompt[" + i + "]: " + ex.getMessage(), ex.code());
		}
	}

	/**
	 * One prompt's streamed chunks: each choice's echoed prompt first (with echo), its
	 * tokens, then its end; {@code first} is the index of the prompt's first choice.
	 */
	private static Flux<CompletionChunk> chunks(Prompt prompt, Flux<GenerationEvent> events, int first, int choices,
			boolean echo, Integer logprobs, boolean scored, LoadedModel model, AtomicInteger generated,
			ChunkHeader header) {
		// each choice's text so far: where a chunk's tokens start in it (text_offset)
		int[] sent = new int[choices];
		return events.concatMap((event) -> {
			if (event instanceof GenerationEvent.Started started && echo) {
				// echo: the prompt comes first in each choice
				List<GeneratedToken> tokens = prompt.scored().get();
				String text = scored ? text(tokens) : prompt.echoed();
				CompletionLogprobs values = logprobs(tokens, logprobs, model, sent[started.choice()]);
				sent[started.choice()] += text.length();
				return Flux
					.just(header.chunk(new CompletionChoice(first + started.choice(), text, values, null), null));
			}
			if (event instanceof GenerationEvent.Token token) {
				String text = token.token().text();
				CompletionLogprobs values = logprobs(List.of(token.token()), logprobs, model, sent[token.choice()]);
				sent[token.choice()] += text.length();
				return Flux.just(header.chunk(new CompletionChoice(first + token.choice(), text, values, null), null));
			}
			if (event instanceof GenerationEvent.Finished finished) {
				generated.addAndGet(finished.result().tokens().length);
				return Flux.just(header.chunk(
						new CompletionChoice(first + finished.choice(), "", null,
								finished.result().finishReason().wireName()),
						prompt.mapped().report(finished.result().cacheHit())));
			}
			return Flux.empty();
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

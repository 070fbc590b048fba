package dev.griffin.serve.web;

import java.util.Arrays;

import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.InferenceScheduler;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.web.ApiTypes.DetokenizeRequest;
import dev.griffin.serve.web.ApiTypes.DetokenizeResponse;
import dev.griffin.serve.web.ApiTypes.TokenizeRequest;
import dev.griffin.serve.web.ApiTypes.TokenizeResponse;

/** Text to token ids and back, as vLLM's /tokenize and /detokenize. */
@RestController
@Tag(name = "Tokenizer", description = "The model's tokenizer")
public class TokenizerController {

	private final InferenceScheduler scheduler;

	private final RequestMapper mapper;

	TokenizerController(InferenceScheduler scheduler, RequestMapper mapper) {
		this.scheduler = scheduler;
		this.mapper = mapper;
	}

	@PostMapping(value = "/tokenize", consumes = MediaType.APPLICATION_JSON_VALUE,
			produces = MediaType.APPLICATION_JSON_VALUE)
	@Operation(summary = "Token ids of a prompt, or of chat messages rendered with the chat template")
	public Mono<TokenizeResponse> tokenize(@RequestBody TokenizeRequest request, ServerWebExchange exchange) {
		LoadedModel model = this.mapper.model(request.model());
		// tokenizing and rendering a template are CPU work: admitted, off the event loop
		Admission admission = AdmissionFilter.admit(this.scheduler, exchange);
		return this.scheduler.prepare(admission, () -> {
			int[] ids;
			if (request.messages() != null) {
				RequestMapper.require(request.prompt() == null, "prompt", "give either prompt or messages, not both");
				ids = this.mapper.chat(request.messages(), model,
						request.addGenerationPrompt() == null || request.addGenerationPrompt());
			}
			else {
				RequestMapper.require(request.prompt() != null, "prompt", "prompt or messages is required");
				ids = model.tokenizer().encode(request.prompt());
			}
			return new TokenizeResponse(Arrays.stream(ids).boxed().toList(), ids.length,
					model.dense().config().maxPositionEmbeddings());
		});
	}

	@PostMapping(value = "/detokenize", consumes = MediaType.APPLICATION_JSON_VALUE,
			produces = MediaType.APPLICATION_JSON_VALUE)
	@Operation(summary = "Text of token ids")
	public Mono<DetokenizeResponse> detokenize(@RequestBody DetokenizeRequest request, ServerWebExchange exchange) {
		LoadedModel model = this.mapper.model(request.model());
		RequestMapper.require(request.tokens() != null, "tokens", "tokens is required");
		Admission admission = AdmissionFilter.admit(this.scheduler, exchange);
		return this.scheduler.prepare(admission, () -> {
			int[] ids = RequestMapper.tokenIds(request.tokens(), "tokens", model.tokenizer().vocabularySize());
			return new DetokenizeResponse(model.tokenizer().decode(ids, false));
		});
	}

}

package dev.griffin.serve.web;

import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.responses.ApiResponse;
import io.swagger.v3.oas.annotations.tags.Tag;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.InferenceScheduler;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.analysis.Flocking;

/**
 * GRIFFIN's flocking, as a picture: the |Z| heatmap of one layer for a prompt and its
 * continuation.
 */
@RestController
@Tag(name = "GRIFFIN", description = "Looking inside expert selection")
public class FlockingController {

	/** The heatmap request. */
	public record FlockingRequest(@Schema(example = "SmolLM2-135M-Instruct") String model,
			@Schema(example = "The quick brown fox jumps over the lazy dog because",
					requiredMode = Schema.RequiredMode.REQUIRED) String prompt,
			@Schema(description = "Layer to draw (default: the middle layer)", example = "15") Integer layer,
			@Schema(description = "Greedy tokens generated after the prompt (1-128, and at most the server's "
					+ "max tokens limit)", example = "32") Integer maxTokens,
			@Schema(description = "Density that sets k", example = "0.5") Double density) {

	}

	/** The most tokens a heatmap draws after the prompt. */
	static final int MAX_HEATMAP_TOKENS = 128;

	private final RequestMapper mapper;

	private final InferenceScheduler scheduler;

	FlockingController(RequestMapper mapper, InferenceScheduler scheduler) {
		this.mapper = mapper;
		this.scheduler = scheduler;
	}

	@PostMapping(value = "/v1/griffin/flocking", consumes = MediaType.APPLICATION_JSON_VALUE,
			produces = MediaType.IMAGE_PNG_VALUE)
	@Operation(summary = "Flocking heatmap of a prompt",
			description = "Runs the dense model on the prompt and a greedy continuation and returns |Z| of one layer as a "
					+ "PNG: one row per token (prompt above the red line), one column per feed-forward neuron ordered by "
					+ "the prompt statistic (the red vertical line marks the k experts GRIFFIN keeps). The header "
					+ "X-Griffin-Jaccard is the mean Jaccard similarity of the prompt's experts and each generated "
					+ "token's top-k neurons in that layer.")
	@ApiResponse(responseCode = "200", description = "The heatmap",
			content = @Content(mediaType = MediaType.IMAGE_PNG_VALUE))
	@ApiResponse(responseCode = "400", description = "Invalid request",
			content = @Content(mediaType = MediaType.APPLICATION_JSON_VALUE,
					schema = @Schema(implementation = ApiTypes.ErrorResponse.class)))
	public Mono<ResponseEntity<byte[]>> flocking(@RequestBody FlockingRequest request, ServerWebExchange exchange) {
		LoadedModel model = this.mapper.model(request.model());
		Admission admission = AdmissionFilter.admit(this.scheduler, exchange);
		return this.scheduler.prepare(admission, () -> prepared(request, model))
			.flatMap((heatmap) -> this.scheduler.execute(admission, () -> heatmap.draw(model)));
	}

	/**
	 * A validated heatmap request: its prompt's tokens and the settings to draw it with.
	 */
	private record Heatmap(int[] prompt, int layer, int maxTokens, double density) {

		ResponseEntity<byte[]> draw(LoadedModel model) {
			Flocking.Result result = Flocking.measure(model.dense(), this.prompt, this.maxTokens, this.density);
			return ResponseEntity.ok()
				.contentType(MediaType.IMAGE_PNG)
				.header("X-Griffin-Jaccard", "%.4f".formatted(result.jaccard()[this.layer]))
				.header("X-Griffin-Experts", String.valueOf(result.experts()))
				.body(Flocking.heatmap(result, this.layer));
		}

	}

	private Heatmap prepared(FlockingRequest request, LoadedModel model) {
		RequestMapper.require(request.prompt() != null && !request.prompt().isBlank(), "prompt", "prompt is required");
		int layers = model.dense().config().numberOfLayers();
		int layer = (request.layer() != null) ? request.layer() : layers / 2;
		RequestMapper.require(layer >= 0 && layer < layers, "layer", "layer must be in [0, %d)".formatted(layers));
		int limit = this.mapper.maxTokensLimit(MAX_HEATMAP_TOKENS);
		int maxTokens = (request.maxTokens() != null) ? request.maxTokens() : Math.min(32, limit);
		RequestMapper.require(maxTokens >= 1 && maxTokens <= limit, "maxTokens",
				"maxTokens must be in [1, %d]".formatted(limit));
		double density = RequestMapper.density((request.density() != null) ? request.density() : 0.5, "density");
		int[] prompt = model.tokenizer().encode(request.prompt());
		RequestMapper.require(prompt.length <= 1024, "prompt", "prompt must be at most 1024 tokens for a heatmap");
		return new Heatmap(prompt, layer, maxTokens, density);
	}

}

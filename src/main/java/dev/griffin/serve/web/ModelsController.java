package dev.griffin.serve.web;

import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

import dev.griffin.serve.generation.ModelService;
import dev.griffin.serve.web.ApiTypes.ModelCard;
import dev.griffin.serve.web.ApiTypes.ModelList;

/** OpenAI's model list: the one served model, with its context length. */
@RestController
@Tag(name = "OpenAI-compatible API")
public class ModelsController {

	private final ModelService models;

	ModelsController(ModelService models) {
		this.models = models;
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

}

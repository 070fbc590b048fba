package dev.griffin.serve.config;

import io.swagger.v3.oas.models.Components;
import io.swagger.v3.oas.models.OpenAPI;
import io.swagger.v3.oas.models.info.Info;
import io.swagger.v3.oas.models.info.License;
import io.swagger.v3.oas.models.security.SecurityRequirement;
import io.swagger.v3.oas.models.security.SecurityScheme;
import io.swagger.v3.oas.models.media.Content;
import io.swagger.v3.oas.models.media.MediaType;
import io.swagger.v3.oas.models.media.Schema;
import io.swagger.v3.oas.models.responses.ApiResponse;
import org.springdoc.core.customizers.OpenApiCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** The OpenAPI document behind /v3/api-docs and Swagger UI. */
@Configuration(proxyBeanMethods = false)
public class OpenApiConfiguration {

	@Bean
	OpenAPI griffinOpenApi(GriffinProperties properties) {
		OpenAPI api = new OpenAPI().info(new Info().title("griffin-serve")
			.version("0.1.0")
			.description("OpenAI-compatible LLM API with GRIFFIN feed-forward expert selection. "
					+ "Add \"griffin\": {\"density\": 0.5, \"method\": \"topk\"} to a request to choose how many "
					+ "feed-forward neurons generation keeps; density 1.0 is the dense model.")
			.license(new License().name("Apache-2.0")));
		if (!properties.security().apiKeys().isEmpty()) {
			api.components(new Components().addSecuritySchemes("bearer",
					new SecurityScheme().type(SecurityScheme.Type.HTTP).scheme("bearer")))
				.addSecurityItem(new SecurityRequirement().addList("bearer"));
		}
		return api;
	}

	/** With API keys, every operation also answers 401 (in OpenAI's error envelope). */
	@Bean
	OpenApiCustomizer unauthorizedResponses(GriffinProperties properties) {
		return (api) -> {
			if (properties.security().apiKeys().isEmpty() || api.getPaths() == null) {
				return;
			}
			api.getPaths()
				.values()
				.forEach((path) -> path.readOperations()
					.forEach((operation) -> operation.getResponses()
						.addApiResponse("401",
								new ApiResponse().description("Missing or incorrect API key")
									.content(new Content().addMediaType("application/json", new MediaType()
										.schema(new Schema<>().$ref("#/components/schemas/ErrorResponse")))))));
		};
	}

}

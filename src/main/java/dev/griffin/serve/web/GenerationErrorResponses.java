package dev.griffin.serve.web;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.responses.ApiResponse;

/**
 * The error responses of the generation endpoints, documented once for OpenAPI: every
 * body is an OpenAI-style {@link ApiTypes.ErrorResponse}.
 */
@Target(ElementType.METHOD)
@Retention(RetentionPolicy.RUNTIME)
@Documented
@ApiResponse(responseCode = "400", description = "Invalid request or context length exceeded",
		content = @Content(schema = @Schema(implementation = ApiTypes.ErrorResponse.class)))
@ApiResponse(responseCode = "404", description = "Unknown model",
		content = @Content(schema = @Schema(implementation = ApiTypes.ErrorResponse.class)))
@ApiResponse(responseCode = "429", description = "Queue full or rate limited (see Retry-After)",
		content = @Content(schema = @Schema(implementation = ApiTypes.ErrorResponse.class)))
@ApiResponse(responseCode = "503", description = "Model not ready or circuit open (see Retry-After)",
		content = @Content(schema = @Schema(implementation = ApiTypes.ErrorResponse.class)))
@interface GenerationErrorResponses {

}

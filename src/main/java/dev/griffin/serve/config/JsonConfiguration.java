package dev.griffin.serve.config;

import java.util.function.Consumer;

import org.springframework.boot.jackson.autoconfigure.JsonMapperBuilderCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import tools.jackson.core.StreamReadFeature;
import tools.jackson.databind.cfg.CoercionAction;
import tools.jackson.databind.cfg.CoercionInputShape;
import tools.jackson.databind.cfg.MutableCoercionConfig;
import tools.jackson.databind.type.LogicalType;

/**
 * Request bodies are read with JSON's own types: an integer field takes an integer, not
 * {@code "5"} nor {@code 2.5} (which Jackson would otherwise turn into 5 and, silently,
 * 2); a number or boolean field takes no string; a string field takes no number or
 * boolean. A wrong type is a 400 that names the field (OpenAI's API is as strict). A
 * number field still takes an integer ({@code "temperature": 1}). An object that names a
 * field twice is refused too, rather than read by its last value: a proxy in front of the
 * server may have checked the first.
 */
@Configuration(proxyBeanMethods = false)
public class JsonConfiguration {

	@Bean
	JsonMapperBuilderCustomizer strictScalars() {
		return (builder) -> builder
			.withCoercionConfig(LogicalType.Integer,
					refusing(CoercionInputShape.String, CoercionInputShape.Float, CoercionInputShape.Boolean))
			.withCoercionConfig(LogicalType.Float, refusing(CoercionInputShape.String, CoercionInputShape.Boolean))
			.withCoercionConfig(LogicalType.Boolean,
					refusing(CoercionInputShape.String, CoercionInputShape.Integer, CoercionInputShape.Float))
			.withCoercionConfig(LogicalType.Textual,
					refusing(CoercionInputShape.Integer, CoercionInputShape.Float, CoercionInputShape.Boolean));
	}

	/** A type's coercion settings that fail on each of {@code shapes}. */
	private static Consumer<MutableCoercionConfig> refusing(CoercionInputShape... shapes) {
		return (config) -> {
			for (CoercionInputShape shape : shapes) {
				config.setCoercion(shape, CoercionAction.Fail);
			}
		};
	}

	@Bean
	JsonMapperBuilderCustomizer uniqueFieldNames() {
		return (builder) -> builder.enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION);
	}

}

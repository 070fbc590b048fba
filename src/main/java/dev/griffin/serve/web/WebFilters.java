package dev.griffin.serve.web;

import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.annotation.Order;
import org.springframework.web.cors.CorsConfiguration;
import org.springframework.web.cors.reactive.CorsWebFilter;
import org.springframework.web.cors.reactive.UrlBasedCorsConfigurationSource;

import dev.griffin.serve.config.GriffinProperties;
import dev.griffin.serve.generation.InferenceScheduler;

/**
 * The web filters in front of every endpoint: the request body's tracking, CORS, then the
 * API key, then admission.
 */
@Configuration(proxyBeanMethods = false)
class WebFilters {

	@Bean
	ApiKeyFilter apiKeyFilter(GriffinProperties properties) {
		GriffinProperties.Security security = properties.security();
		return new ApiKeyFilter(security.apiKeys(), security.maxRequestSize().toBytes(), security.publicDocs());
	}

	@Bean
	RequestBodies requestBodies() {
		return new RequestBodies();
	}

	@Bean
	AdmissionFilter admissionFilter(InferenceScheduler scheduler) {
		return new AdmissionFilter(scheduler::arrival);
	}

	/**
	 * Before authentication, so a browser's preflight (which carries no key) is answered.
	 */
	@Bean
	@Order(ApiKeyFilter.ORDER - 1)
	CorsWebFilter corsWebFilter(GriffinProperties properties) {
		CorsConfiguration cors = new CorsConfiguration();
		properties.security().corsAllowedOrigins().forEach(cors::addAllowedOrigin);
		cors.addAllowedMethod("GET");
		cors.addAllowedMethod("POST");
		cors.addAllowedHeader("*");
		UrlBasedCorsConfigurationSource source = new UrlBasedCorsConfigurationSource();
		source.registerCorsConfiguration("/**", cors);
		return new CorsWebFilter(source);
	}

}

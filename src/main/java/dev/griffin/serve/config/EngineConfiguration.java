package dev.griffin.serve.config;

import java.nio.file.Path;
import java.time.Duration;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.bulkhead.BulkheadRegistry;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerRegistry;
import io.github.resilience4j.ratelimiter.RateLimiterRegistry;
import io.github.resilience4j.timelimiter.TimeLimiterRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.boot.context.event.ApplicationReadyEvent;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.event.EventListener;
import org.springframework.web.cors.CorsConfiguration;
import org.springframework.web.cors.reactive.CorsWebFilter;
import org.springframework.web.cors.reactive.UrlBasedCorsConfigurationSource;

import dev.griffin.serve.generation.InferenceScheduler;
import dev.griffin.serve.generation.ModelService;
import dev.griffin.serve.griffin.ExpertCache;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.observability.GenerationMetrics;
import dev.griffin.serve.web.ApiKeyFilter;
import dev.griffin.serve.weights.ModelLoader;

/**
 * Wires the engine into the service: model, expert cache, scheduler with Resilience4j,
 * filters.
 */
@Configuration(proxyBeanMethods = false)
@EnableConfigurationProperties(GriffinProperties.class)
public class EngineConfiguration {

	@Bean(destroyMethod = "close")
	ModelService modelService(GriffinProperties properties) {
		GriffinProperties.Model model = properties.model();
		System.setProperty("ai.djl.offline", System.getProperty("ai.djl.offline", "true"));
		if (model.threads() > 0) {
			System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(model.threads()));
		}
		Path path = (model.path() != null && !model.path().toString().isBlank()) ? model.path()
				: ModelLoader.defaultModelPath();
		String source = (model.source() != null && !model.source().isBlank()) ? model.source() : path.toString();
		return new ModelService(source, model.id(),
				new ModelOptions(ModelOptions.Precision.parse(model.dtype()), model.device()),
				properties.generation().warmUp());
	}

	@EventListener(ApplicationReadyEvent.class)
	void loadModel(ApplicationReadyEvent event) {
		event.getApplicationContext().getBean(ModelService.class).startLoading();
	}

	@Bean
	ExpertCache expertCache(GriffinProperties properties) {
		return new ExpertCache(properties.cache().maxSize().toBytes());
	}

	@Bean
	GenerationMetrics generationMetrics(MeterRegistry registry, ExpertCache cache) {
		return new GenerationMetrics(registry, cache);
	}

	@Bean(destroyMethod = "close")
	InferenceScheduler inferenceScheduler(GriffinProperties properties, ModelService models, ExpertCache cache,
			GenerationMetrics metrics, BulkheadRegistry bulkheads, CircuitBreakerRegistry circuitBreakers,
			RateLimiterRegistry rateLimiters, TimeLimiterRegistry timeLimiters) {
		GriffinProperties.Generation generation = properties.generation();
		// Running plus waiting requests; beyond that, 429 at once.
		Bulkhead bulkhead = bulkheads.bulkhead("generation",
				BulkheadConfig.custom()
					.maxConcurrentCalls(generation.workers() + generation.queueCapacity())
					.maxWaitDuration(Duration.ZERO)
					.build());
		CircuitBreaker circuitBreaker = circuitBreakers.circuitBreaker("engine");
		Duration maxTime = timeLimiters.timeLimiter("generation").getTimeLimiterConfig().getTimeoutDuration();
		return new InferenceScheduler(models, properties.cache().enabled() ? cache : null, metrics,
				generation.workers(), bulkhead, circuitBreaker, rateLimiters, maxTime);
	}

	@Bean
	ApiKeyFilter apiKeyFilter(GriffinProperties properties) {
		return new ApiKeyFilter(properties.security().apiKeys(), properties.security().maxRequestSize().toBytes());
	}

	@Bean
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

	/** Readiness: down until the model is loaded and a warm-up generation has run. */
	@Bean
	HealthIndicator modelHealthIndicator(ModelService models) {
		return () -> switch (models.state()) {
			case READY -> Health.up().withDetail("model", models.modelId()).build();
			case LOADING ->
				Health.outOfService().withDetail("model", models.modelId()).withDetail("state", "loading").build();
			case FAILED -> Health.down()
				.withDetail("model", models.modelId())
				.withDetail("error", String.valueOf(models.failure()))
				.build();
		};
	}

}

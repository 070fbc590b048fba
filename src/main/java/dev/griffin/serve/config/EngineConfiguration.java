package dev.griffin.serve.config;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.OptionalLong;
import java.time.Duration;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.bulkhead.BulkheadRegistry;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerRegistry;
import io.github.resilience4j.ratelimiter.RateLimiterRegistry;
import io.github.resilience4j.timelimiter.TimeLimiterRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.boot.context.event.ApplicationReadyEvent;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.event.EventListener;

import dev.griffin.serve.griffin.NeuronPrior;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.generation.EngineProbe;
import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.MemoryBudget;
import dev.griffin.serve.generation.InferenceScheduler;
import dev.griffin.serve.generation.ModelService;
import dev.griffin.serve.generation.PromptCache;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.observability.GenerationMetrics;
import dev.griffin.serve.weights.Checkpoints;

/**
 * Wires the engine into the service: model, prompt cache, scheduler with Resilience4j,
 * filters.
 */
@Configuration(proxyBeanMethods = false)
@EnableConfigurationProperties(GriffinProperties.class)
public class EngineConfiguration {

	@Bean(destroyMethod = "close")
	ModelService modelService(GriffinProperties properties, ObjectProvider<EngineProbe> probe) {
		GriffinProperties.Model model = properties.model();
		System.setProperty("ai.djl.offline", System.getProperty("ai.djl.offline", "true"));
		if (model.threads() > 0) {
			System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(model.threads()));
		}
		Path path = (model.path() != null && !model.path().toString().isBlank()) ? model.path()
				: Checkpoints.defaultModelPath();
		String source = (model.source() != null && !model.source().isBlank()) ? model.source() : path.toString();
		ModelOptions options = ModelOptions
			.of(model.dtype(), model.device(), model.decodeKernel(), model.prefillKernel())
			.withPackWeights(model.packWeights())
			.withKvCache(ModelOptions.kvCache(model.kvCacheDtype()));
		return new ModelService(source, model.id(), options, model.prior(), properties.generation().warmUp(),
				probe.getIfAvailable(() -> EngineProbe.NONE));
	}

	@EventListener(ApplicationReadyEvent.class)
	void loadModel(ApplicationReadyEvent event) {
		ModelService models = event.getApplicationContext().getBean(ModelService.class);
		GriffinProperties properties = event.getApplicationContext().getBean(GriffinProperties.class);
		models.checkOnLoad((loaded) -> {
			checkDefaultMethod(loaded, properties);
			checkMemoryBudget(loaded, models.options(), properties);
		});
		models.startLoading();
	}

	private static final Logger logger = LoggerFactory.getLogger(EngineConfiguration.class);

	/**
	 * Refuses a default selection method the model cannot run (glass without a prior,
	 * layerwise below the densities its sensitivities are measured at).
	 */
	static void checkDefaultMethod(LoadedModel loaded, GriffinProperties properties) {
		SelectionMethod method = SelectionMethod.parse(properties.generation().defaultMethod());
		if (!loaded.supports(method)) {
			throw new IllegalStateException(("griffin.generation.default-method is %s, which needs the model's neuron "
					+ "prior at %s: measure it with the prior command, or choose another method")
				.formatted(method.wireName(), NeuronPrior.pathFor(loaded.path())));
		}
		if (method.spreadsDensity()) {
			// a default density layerwise cannot spread fails here, not on every request
			loaded.schedule(properties.generation().defaultDensity(), method);
		}
	}

	/**
	 * Refuses a configuration whose worst case (every worker at the longest context, the
	 * cache full) does not fit the memory limit.
	 */
	static void checkMemoryBudget(LoadedModel loaded, ModelOptions options, GriffinProperties properties) {
		ModelConfig config = loaded.dense().config();
		long heap = Runtime.getRuntime().maxMemory();
		// on a GPU, weights, KV caches and cached experts are in device memory; on the
		// CPU the weights are in libtorch's memory, outside the JVM's caps
		boolean host = options.device().startsWith("cpu");
		MemoryBudget budget = new MemoryBudget(heap, maxDirectMemory(heap),
				host ? MemoryBudget.weights(config, options) : 0,
				(host && properties.cache().enabled()) ? properties.cache().maxSize().toBytes() : 0,
				host ? MemoryBudget.perSequence(config, options, Generator.PREFILL_CHUNK) : 0,
				properties.generation().workers(), host ? MemoryBudget.arena(config, options,
						properties.generation().workers(), properties.generation().kvArenaTokens()) : 0,
				properties.memory().overhead().toBytes());
		OptionalLong limit = (properties.memory().limit() != null)
				? OptionalLong.of(properties.memory().limit().toBytes()) : MemoryBudget.containerLimit();
		if (limit.isEmpty()) {
			logger.info("memory budget: {} (no memory limit to check it against)", budget);
			return;
		}
		if (budget.total() > limit.getAsLong()) {
			throw new IllegalStateException(("the configuration needs up to %s, more than the memory limit of %d MiB: "
					+ "lower griffin.cache.max-size or griffin.generation.workers, or raise the limit")
				.formatted(budget, limit.getAsLong() >> 20));
		}
		logger.info("memory budget: {} within the limit of {} MiB", budget, limit.getAsLong() >> 20);
	}

	/** -XX:MaxDirectMemorySize, whose default is the heap's maximum. */
	private static long maxDirectMemory(long heap) {
		try {
			var diagnostics = ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class);
			long configured = Long.parseLong(diagnostics.getVMOption("MaxDirectMemorySize").getValue());
			return (configured > 0) ? configured : heap;
		}
		catch (RuntimeException ex) {
			return heap;
		}
	}

	@Bean
	PromptCache promptCache(GriffinProperties properties) {
		// each API key gets an equal share, so no tenant evicts another's entries
		return new PromptCache(properties.cache().maxSize().toBytes(),
				Math.max(1, properties.security().apiKeys().size()));
	}

	@Bean
	GenerationMetrics generationMetrics(MeterRegistry registry, PromptCache cache) {
		return new GenerationMetrics(registry, cache);
	}

	@Bean(destroyMethod = "close")
	InferenceScheduler inferenceScheduler(GriffinProperties properties, ModelService models, PromptCache cache,
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
				generation.workers(), generation.kvArenaTokens(), bulkhead, circuitBreaker, rateLimiters, maxTime,
				new InferenceScheduler.Limits(generation.maxConcurrentPerKey(), generation.tokensPerMinutePerKey(),
						generation.stallTimeout(), generation.promptGather(), generation.decodingPromptTokens()));
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

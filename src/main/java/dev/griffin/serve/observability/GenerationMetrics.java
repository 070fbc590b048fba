package dev.griffin.serve.observability;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;

/**
 * The service's meters, exported on /actuator/prometheus: latency histograms (time to
 * first token, inter-token latency, queue time, request duration), token and outcome
 * counters, running and waiting requests, decode steps and prompt passes, feed-forward
 * density and prompt-cache figures.
 */
public final class GenerationMetrics {

	private final Timer timeToFirstToken;

	private final Timer interTokenLatency;

	private final Timer queueTime;

	private final Timer requestDuration;

	private final Counter promptTokens;

	private final Counter generatedTokens;

	private final Counter cancelled;

	private final Counter failed;

	private final Counter rejected;

	private final Counter cacheHits;

	private final Counter cacheMisses;

	private final DistributionSummary density;

	private final Counter prefixHits;

	private final Counter prefixTokens;

	private final Timer stepTime;

	private final DistributionSummary batchSize;

	private final DistributionSummary promptPass;

	private final AtomicInteger lastBatch = new AtomicInteger();

	private final AtomicInteger running = new AtomicInteger();

	private final AtomicInteger waiting = new AtomicInteger();

	public GenerationMetrics(MeterRegistry registry, CacheStatistics cache) {
		this.timeToFirstToken = latency(registry, "griffin.time.to.first.token",
				"From request admission to the first token");
		this.interTokenLatency = latency(registry, "griffin.inter.token.latency",
				"Between consecutive generated tokens");
		this.queueTime = latency(registry, "griffin.queue.time", "From admission until the engine takes the request");
		this.stepTime = latency(registry, "griffin.engine.step.time", "One decode pass over the running batch");
		this.batchSize = DistributionSummary.builder("griffin.engine.batch.size")
			.description("Sequences in each decode pass (tokens per step)")
			.register(registry);
		this.promptPass = DistributionSummary.builder("griffin.engine.prompt.pass.sequences")
			.description("Sequences whose prompt chunks ran in each prompt pass (requests sent together share one)")
			.register(registry);
		Gauge.builder("griffin.engine.batch.running", this.lastBatch, AtomicInteger::get)
			.description("Sequences in the latest decode pass")
			.register(registry);
		this.requestDuration = latency(registry, "griffin.request.duration", "From admission to the last token");
		this.promptTokens = Counter.builder("griffin.prompt.tokens")
			.description("Prompt tokens processed")
			.register(registry);
		this.generatedTokens = Counter.builder("griffin.generation.tokens")
			.description("Tokens generated")
			.register(registry);
		this.cancelled = Counter.builder("griffin.requests.cancelled")
			.description("Generations stopped because the client went away")
			.register(registry);
		this.failed = Counter.builder("griffin.requests.failed")
			.description("Generations that failed")
			.register(registry);
		this.rejected = Counter.builder("griffin.requests.rejected")
			.description("Requests refused by the queue or the rate limiter")
			.register(registry);
		this.cacheHits = Counter.builder("griffin.expert.cache.hits").register(registry);
		this.prefixHits = Counter.builder("griffin.prompt.prefix.hits")
			.description("Prompts that started from a cached prefix of theirs")
			.register(registry);
		this.prefixTokens = Counter.builder("griffin.prompt.prefix.tokens")
			.description("Prompt tokens restored from cached prefixes instead of run")
			.register(registry);
		this.cacheMisses = Counter.builder("griffin.expert.cache.misses").register(registry);
		this.density = DistributionSummary.builder("griffin.ff.density")
			.description("Feed-forward density used by each request (1 = dense)")
			.register(registry);
		Gauge.builder("griffin.requests.running", this.running, AtomicInteger::get).register(registry);
		Gauge.builder("griffin.requests.waiting", this.waiting, AtomicInteger::get).register(registry);
		if (cache != null) {
			Gauge.builder("griffin.expert.cache.bytes", cache, CacheStatistics::bytes)
				.baseUnit("bytes")
				.register(registry);
			Gauge.builder("griffin.expert.cache.entries", cache, CacheStatistics::size).register(registry);
			Gauge.builder("griffin.expert.cache.evictions", cache, CacheStatistics::evictionCount).register(registry);
			Gauge.builder("griffin.expert.cache.hit.ratio", this, GenerationMetrics::hitRatio).register(registry);
		}
	}

	private static Timer latency(MeterRegistry registry, String name, String description) {
		return Timer.builder(name)
			.description(description)
			.publishPercentileHistogram()
			.minimumExpectedValue(Duration.ofMillis(1))
			.maximumExpectedValue(Duration.ofMinutes(5))
			.register(registry);
	}

	private double hitRatio() {
		double hits = this.cacheHits.count();
		double total = hits + this.cacheMisses.count();
		return (total == 0) ? 0 : hits / total;
	}

	public void waiting(int delta) {
		this.waiting.addAndGet(delta);
	}

	public void running(int delta) {
		this.running.addAndGet(delta);
	}

	public void queued(long nanos) {
		this.queueTime.record(Duration.ofNanos(nanos));
	}

	/** One prompt pass over chunks of {@code sequences} sequences' prompts. */
	public void promptPass(int sequences) {
		this.promptPass.record(sequences);
	}

	/** One decode pass of {@code sequences} sequences (one token each). */
	public void step(int sequences, long nanos) {
		this.stepTime.record(Duration.ofNanos(nanos));
		this.batchSize.record(sequences);
		this.lastBatch.set(sequences);
	}

	public void firstToken(long nanos) {
		this.timeToFirstToken.record(Duration.ofNanos(nanos));
	}

	public void interToken(long nanos) {
		this.interTokenLatency.record(Duration.ofNanos(nanos));
	}

	public void finished(long nanos, int prompt, int generated, double density, boolean cacheUsed, boolean cacheHit) {
		this.requestDuration.record(Duration.ofNanos(nanos));
		this.promptTokens.increment(prompt);
		this.generatedTokens.increment(generated);
		this.density.record(density);
		if (cacheUsed) {
			(cacheHit ? this.cacheHits : this.cacheMisses).increment();
		}
	}

	/** A prompt started from a cached prefix of {@code tokens} tokens (0: none). */
	public void prefixRestored(int tokens) {
		if (tokens > 0) {
			this.prefixHits.increment();
			this.prefixTokens.increment(tokens);
		}
	}

	public void cancelled() {
		this.cancelled.increment();
	}

	public void failed() {
		this.failed.increment();
	}

	public void rejected() {
		this.rejected.increment();
	}

}

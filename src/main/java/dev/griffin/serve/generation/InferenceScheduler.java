package dev.griffin.serve.generation;

import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadFullException;
import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.ratelimiter.RateLimiter;
import io.github.resilience4j.ratelimiter.RateLimiterRegistry;
import io.github.resilience4j.ratelimiter.RequestNotPermitted;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

import dev.griffin.serve.griffin.ExpertCache;
import dev.griffin.serve.observability.GenerationMetrics;

/**
 * The one adapter between the blocking generation loop and the reactive web layer.
 * Generations run on a dedicated, bounded pool of inference threads (never on Netty's),
 * behind Resilience4j: a rate limiter per API key, a bulkhead that bounds running plus
 * queued requests, a circuit breaker that opens on repeated engine failures, and the time
 * limiter's timeout as a generation deadline. Cancelling the Flux (a client that
 * disconnects) stops decoding within one step and frees the sequence's memory.
 */
public final class InferenceScheduler implements AutoCloseable {

	private static final Logger logger = LoggerFactory.getLogger(InferenceScheduler.class);

	private final ModelService models;

	private final ExpertCache cache;

	private final GenerationMetrics metrics;

	private final Bulkhead bulkhead;

	private final CircuitBreaker circuitBreaker;

	private final RateLimiterRegistry rateLimiters;

	private final Duration maxGenerationTime;

	private final ExecutorService executor;

	public InferenceScheduler(ModelService models, ExpertCache cache, GenerationMetrics metrics, int workers,
			Bulkhead bulkhead, CircuitBreaker circuitBreaker, RateLimiterRegistry rateLimiters,
			Duration maxGenerationTime) {
		this.models = models;
		this.cache = cache;
		this.metrics = metrics;
		this.bulkhead = bulkhead;
		this.circuitBreaker = circuitBreaker;
		this.rateLimiters = rateLimiters;
		this.maxGenerationTime = maxGenerationTime;
		AtomicInteger threads = new AtomicInteger();
		// The bulkhead admits at most workers + queue capacity, so this queue never
		// rejects.
		this.executor = new ThreadPoolExecutor(workers, workers, 0, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
				(runnable) -> {
					Thread thread = new Thread(runnable, "inference-" + threads.incrementAndGet());
					thread.setDaemon(true);
					return thread;
				});
	}

	/**
	 * Admits a job or throws at once: {@link RequestNotPermitted} (rate limit),
	 * {@link BulkheadFullException} (queue full), {@link CallNotPermittedException}
	 * (circuit open), {@link ModelNotReadyException}.
	 * @return the job's events; cancelling the subscription cancels the generation
	 */
	public Flux<GenerationEvent> submit(GenerationJob job) {
		Generator generator = this.models.generator(job.griffin());
		generator.checkContextLength(job.prompt().length, job.params().maxNewTokens());
		RateLimiter limiter = (job.rateLimitKey() != null) ? this.rateLimiters
			.rateLimiter("key-" + Integer.toHexString(job.rateLimitKey().hashCode()), "generation")
				: this.rateLimiters.rateLimiter("generation");
		if (!limiter.acquirePermission()) {
			this.metrics.rejected();
			throw RequestNotPermitted.createRequestNotPermitted(limiter);
		}
		if (!this.bulkhead.tryAcquirePermission()) {
			this.metrics.rejected();
			throw BulkheadFullException.createBulkheadFullException(this.bulkhead);
		}
		if (!this.circuitBreaker.tryAcquirePermission()) {
			this.bulkhead.onComplete();
			throw CallNotPermittedException.createCallNotPermittedException(this.circuitBreaker);
		}
		long admitted = System.nanoTime();
		return Flux.create((FluxSink<GenerationEvent> sink) -> {
			AtomicBoolean cancelled = new AtomicBoolean();
			sink.onDispose(() -> cancelled.set(true));
			this.metrics.waiting(1);
			this.executor.execute(() -> run(job, generator, sink, cancelled, admitted));
		}, FluxSink.OverflowStrategy.BUFFER);
	}

	/**
	 * Runs other model work (an analysis such as flocking) on the inference pool,
	 * admitted by the same bulkhead as generations.
	 */
	public <T> Mono<T> execute(Supplier<T> work) {
		if (!this.bulkhead.tryAcquirePermission()) {
			this.metrics.rejected();
			throw BulkheadFullException.createBulkheadFullException(this.bulkhead);
		}
		return Mono.fromCallable(work::get)
			.subscribeOn(Schedulers.fromExecutor(this.executor))
			.doFinally((signal) -> this.bulkhead.onComplete());
	}

	private void run(GenerationJob job, Generator generator, FluxSink<GenerationEvent> sink, AtomicBoolean cancelled,
			long admitted) {
		this.metrics.waiting(-1);
		long begin = System.nanoTime();
		this.metrics.queued(begin - admitted);
		this.metrics.running(1);
		boolean useCache = this.cache != null && job.useCache()
				&& (!job.griffin().isRandomized() || job.params().seed() != null);
		try {
			if (cancelled.get()) {
				this.metrics.cancelled();
				this.circuitBreaker.releasePermission();
				return;
			}
			long deadline = begin + this.maxGenerationTime.toNanos();
			boolean firstToken = true;
			for (int choice = 0; choice < job.choices() && !cancelled.get(); choice++) {
				SamplingParams params = (choice == 0 || job.params().seed() == null) ? job.params()
						: withSeed(job.params(), job.params().seed() + choice);
				String key = useCache
						? this.models.cacheKey(job.griffin(), params.seed(), job.tenantSalt(), job.prompt()) : null;
				int index = choice;
				long[] last = { 0 };
				boolean[] first = { firstToken };
				Generator.Result result = generator.generate(job.prompt(), params,
						new Generator.Options(job.topLogprobs(), useCache ? this.cache : null, key, deadline),
						new Generator.Listener() {
							@Override
							public boolean onPromptProcessed(boolean cacheHit) {
								sink.next(new GenerationEvent.Started(index, cacheHit));
								return !cancelled.get();
							}

							@Override
							public boolean onToken(GeneratedToken token) {
								long now = System.nanoTime();
								if (first[0]) {
									InferenceScheduler.this.metrics.firstToken(now - admitted);
									first[0] = false;
								}
								else if (last[0] != 0) {
									InferenceScheduler.this.metrics.interToken(now - last[0]);
								}
								last[0] = now;
								sink.next(new GenerationEvent.Token(index, token));
								return !cancelled.get();
							}
						});
				firstToken = first[0];
				this.metrics.finished(System.nanoTime() - admitted, result.promptTokens(), result.tokens().length,
						job.griffin().density(), useCache, result.cacheHit());
				if (result.finishReason() == FinishReason.CANCELLED) {
					this.metrics.cancelled();
					logger.info("generation cancelled by the client after {} tokens", result.tokens().length);
					break;
				}
				sink.next(new GenerationEvent.Finished(index, result));
			}
			this.circuitBreaker.onSuccess(System.nanoTime() - begin, TimeUnit.NANOSECONDS);
			sink.complete();
		}
		catch (IllegalArgumentException | GenerationTimeoutException ex) {
			// the request's fault or its time budget, not the engine's
			this.circuitBreaker.releasePermission();
			sink.error(ex);
		}
		catch (RuntimeException | Error ex) {
			this.metrics.failed();
			this.circuitBreaker.onError(System.nanoTime() - begin, TimeUnit.NANOSECONDS, ex);
			logger.error("generation failed: {}", ex.toString(), ex);
			sink.error(ex);
		}
		finally {
			this.metrics.running(-1);
			this.bulkhead.onComplete();
		}
	}

	private static SamplingParams withSeed(SamplingParams p, long seed) {
		return new SamplingParams(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(),
				p.presencePenalty(), p.frequencyPenalty(), seed, p.maxNewTokens(), p.stopStrings(), p.stopTokenIds(),
				p.ignoreEos());
	}

	@Override
	public void close() {
		this.executor.shutdownNow();
	}

}

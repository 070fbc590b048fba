package dev.griffin.serve.generation;

import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.bulkhead.BulkheadFullException;
import io.github.resilience4j.bulkhead.BulkheadRegistry;
import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.ratelimiter.RateLimiter;
import io.github.resilience4j.ratelimiter.RateLimiterConfig;
import io.github.resilience4j.ratelimiter.RateLimiterRegistry;
import io.github.resilience4j.ratelimiter.RequestNotPermitted;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.observability.GenerationMetrics;
import dev.griffin.serve.tokenizer.Tokenizer;

/**
 * The one adapter between the engine and the reactive web layer.
 * <p>
 * A request is first admitted on the caller's thread with cheap checks only: its API
 * key's request rate, its key's concurrency cap, the server's bulkhead (running plus
 * queued requests) and the circuit breaker. Its CPU work (rendering, tokenizing,
 * validation, building a GRIFFIN variant) then runs on a small preparation pool, never on
 * Netty's threads, and its token budget (prompt + max_tokens x n) is charged to the key.
 * Generations run on the {@link EngineLoop}, which takes requests fairly across keys and
 * decodes every running sequence in one batched pass per step. Each stream's buffer is
 * bounded: the loop hands a client its events as it reads them and cancels a stream whose
 * client stops reading for the stall timeout. The deadline counts from admission. Only
 * engine failures count towards the circuit breaker; a request's own fault never does.
 * Cancelling the Flux (a client that disconnects) stops prefill within one chunk and
 * decoding within one step, and every permit is returned on every path.
 */
public final class InferenceScheduler implements AutoCloseable {

	/**
	 * Per-key limits.
	 *
	 * @param concurrentRequests running plus queued requests one API key may have
	 * @param tokensPerMinute prompt + max_tokens x n one key may ask for per minute, 0
	 * for no budget
	 * @param stallTimeout how long a stream may wait for a client that stopped reading
	 * before it is cancelled
	 * @param promptGather how long an idle engine holds a new prompt's pass for requests
	 * still being prepared, so that a burst of arrivals shares one pass (0: never)
	 * @param decodingPromptTokens prompt tokens an engine step runs at most while other
	 * sequences decode
	 */
	public record Limits(int concurrentRequests, long tokensPerMinute, Duration stallTimeout, Duration promptGather,
			int decodingPromptTokens) {

		public Limits {
			if (concurrentRequests < 1 || tokensPerMinute < 0 || stallTimeout.isNegative() || stallTimeout.isZero()
					|| promptGather.isNegative() || decodingPromptTokens < 1) {
				throw new IllegalArgumentException("per-key concurrency >= 1, a token budget >= 0, a positive stall "
						+ "timeout, a prompt gathering time >= 0 and at least one prompt token a step while "
						+ "decoding are required");
			}
		}

	}

	private final ModelService models;

	private final PromptCache cache;

	private final GenerationMetrics metrics;

	private final Bulkhead bulkhead;

	private final CircuitBreaker circuitBreaker;

	private final RateLimiterRegistry rateLimiters;

	private final BulkheadRegistry tenantBulkheads;

	private final Duration maxGenerationTime;

	private final Limits limits;

	private final EngineLoop engine;

	private final ExecutorService preparation;

	private final AtomicInteger preparing = new AtomicInteger();

	private final AtomicInteger arriving = new AtomicInteger();

	/** {@link System#nanoTime()} of the latest {@link #arrival()}. */
	private final AtomicLong latestArrival = new AtomicLong();

	private final Scheduler preparationScheduler;

	/**
	 * @param sequences sequences the engine decodes together at most
	 * @param arenaTokensPerSequence the engine's KV arena per sequence (0: none)
	 */
	public InferenceScheduler(ModelService models, PromptCache cache, GenerationMetrics metrics, int sequences,
			int arenaTokensPerSequence, Bulkhead bulkhead, CircuitBreaker circuitBreaker,
			RateLimiterRegistry rateLimiters, Duration maxGenerationTime, Limits limits) {
		this.models = models;
		this.cache = cache;
		this.metrics = metrics;
		this.bulkhead = bulkhead;
		this.circuitBreaker = circuitBreaker;
		this.rateLimiters = rateLimiters;
		this.maxGenerationTime = maxGenerationTime;
		this.limits = limits;
		this.tenantBulkheads = BulkheadRegistry.of(BulkheadConfig.custom()
			.maxConcurrentCalls(limits.concurrentRequests())
			.maxWaitDuration(Duration.ZERO)
			.build());
		this.engine = new EngineLoop(sequences, arenaTokensPerSequence, Generator.PREFILL_CHUNK,
				limits.decodingPromptTokens(), cache, metrics, limits.stallTimeout(), this::preparing,
				limits.promptGather());
		// Admission bounds what waits here, so the queue never grows past the bulkhead.
		AtomicInteger threads = new AtomicInteger();
		int preparers = Math.max(1, Math.min(2, Runtime.getRuntime().availableProcessors()));
		this.preparation = new ThreadPoolExecutor(preparers, preparers, 0, TimeUnit.SECONDS,
				new LinkedBlockingQueue<>(), (runnable) -> {
					Thread thread = new Thread(runnable, "request-preparation-" + threads.incrementAndGet());
					thread.setDaemon(true);
					return thread;
				});
		this.preparationScheduler = Schedulers.fromExecutorService(this.preparation, "request-preparation");
	}

	/**
	 * Admits a request or throws at once: {@link RequestNotPermitted} (the key's request
	 * rate), {@link BulkheadFullException} (the key's concurrency cap, or the server's
	 * queue), {@link CallNotPermittedException} (circuit open). Cheap: safe on an event
	 * loop. The caller must make sure {@link Admission#releaseUnclaimed()} runs when the
	 * request ends (it is a no-op once a worker owns the permits).
	 * @param tenant the API key, or null when the server has none
	 */
	public Admission admit(String tenant) {
		RateLimiter limiter = (tenant != null)
				? this.rateLimiters.rateLimiter("key-" + Integer.toHexString(tenant.hashCode()), "generation")
				: this.rateLimiters.rateLimiter("generation");
		if (!limiter.acquirePermission()) {
			this.metrics.rejected();
			throw RequestNotPermitted.createRequestNotPermitted(limiter);
		}
		Bulkhead tenantBulkhead = null;
		if (tenant != null) {
			tenantBulkhead = this.tenantBulkheads.bulkhead("key-" + Integer.toHexString(tenant.hashCode()));
			if (!tenantBulkhead.tryAcquirePermission()) {
				this.metrics.rejected();
				throw BulkheadFullException.createBulkheadFullException(tenantBulkhead);
			}
		}
		if (!this.bulkhead.tryAcquirePermission()) {
			release(tenantBulkhead);
			this.metrics.rejected();
			throw BulkheadFullException.createBulkheadFullException(this.bulkhead);
		}
		if (!this.circuitBreaker.tryAcquirePermission()) {
			this.bulkhead.onComplete();
			release(tenantBulkhead);
			throw CallNotPermittedException.createCallNotPermittedException(this.circuitBreaker);
		}
		return new Admission(tenant, tenantBulkhead, this.bulkhead, this.circuitBreaker, this.preparing);
	}

	/**
	 * Counts a request from its arrival (its headers read, its key accepted) until its
	 * admission is asked for, or until it ends without one: the time in which its body is
	 * read and parsed. The returned action ends the count; it may run any number of
	 * times, from any thread.
	 */
	public Runnable arrival() {
		this.latestArrival.set(System.nanoTime());
		this.arriving.incrementAndGet();
		AtomicBoolean ended = new AtomicBoolean();
		return () -> {
			if (ended.compareAndSet(false, true)) {
				this.arriving.decrementAndGet();
			}
		};
	}

	/**
	 * Requests on their way to the engine: arrived and not yet admitted
	 * ({@link #arrival()}), or admitted and not yet handed to the engine or ended (being
	 * prepared, or prepared and about to be queued). An idle engine holds a new prompt's
	 * pass for them, up to the prompt gathering time. Arrivals count only while the
	 * latest came within that time: a body sent slowly is no request sent together with a
	 * later one, and must not hold every later prompt.
	 */
	public int preparing() {
		int arriving = this.arriving.get();
		boolean recent = arriving > 0
				&& System.nanoTime() - this.latestArrival.get() <= this.limits.promptGather().toNanos();
		return (recent ? arriving : 0) + this.preparing.get();
	}

	private static void release(Bulkhead bulkhead) {
		if (bulkhead != null) {
			bulkhead.onComplete();
		}
	}

	/**
	 * Runs an admitted request's CPU work (rendering, tokenizing, validating) on the
	 * preparation pool; if it fails, the admission's permits are returned.
	 */
	public <T> Mono<T> prepare(Admission admission, Supplier<T> work) {
		return Mono.fromSupplier(work)
			.subscribeOn(this.preparationScheduler)
			.doOnError((error) -> admission.releaseUnclaimed());
	}

	/**
	 * Charges a request's tokens to its key's budget.
	 * @throws RequestNotPermitted when the budget of the current minute is spent
	 * @throws InvalidParameterException when one request needs more than a whole minute's
	 * budget
	 */
	public void chargeTokens(Admission admission, long tokens) {
		if (this.limits.tokensPerMinute() == 0 || admission.tenant() == null) {
			// without API keys there are no tenants to share out: the request rate and
			// the bulkhead bound the server
			return;
		}
		long budget = this.limits.tokensPerMinute();
		if (tokens > budget) {
			throw new InvalidParameterException("max_tokens",
					"this request needs up to %d tokens (prompt + max_tokens x n); the budget is %d tokens per minute"
						.formatted(tokens, budget));
		}
		String name = "tokens-key-" + Integer.toHexString(admission.tenant().hashCode());
		RateLimiter limiter = this.rateLimiters.rateLimiter(name,
				RateLimiterConfig.custom()
					.limitForPeriod((int) Math.min(Integer.MAX_VALUE, budget))
					.limitRefreshPeriod(Duration.ofMinutes(1))
					.timeoutDuration(Duration.ZERO)
					.build());
		if (!limiter.acquirePermission((int) tokens)) {
			this.metrics.rejected();
			throw RequestNotPermitted.createRequestNotPermitted(limiter);
		}
	}

	/**
	 * Queues an admitted job.
	 * @return the job's events; cancelling the subscription cancels the generation
	 */
	public Flux<GenerationEvent> submit(Admission admission, GenerationJob job) {
		CausalLm model = this.models.variant(job.griffin());
		Tokenizer tokenizer = this.models.model().tokenizer();
		boolean useCache = this.cache != null && job.useCache()
				&& (!job.griffin().isRandomized() || job.params().seed() != null);
		PromptCache.Key key = useCache ? this.models.cacheKey(job.griffin(), job.params().seed(), job.tenantSalt(),
				admission.tenant(), job.prompt()) : null;
		long deadline = admission.admittedNanos() + this.maxGenerationTime.toNanos();
		EngineLoop.Submission submission = new EngineLoop.Submission(job, model, tokenizer, this.models.probe(), key,
				deadline, admission);
		return Flux.create((FluxSink<GenerationEvent> sink) -> {
			if (!admission.claim()) {
				sink.error(new IllegalStateException("the request ended before it was queued"));
				return;
			}
			this.engine.submit(submission, sink, new AtomicBoolean());
		}, FluxSink.OverflowStrategy.BUFFER);
	}

	/**
	 * Runs other model work (an analysis such as flocking) of an admitted request on the
	 * engine's thread, between two steps.
	 */
	public <T> Mono<T> execute(Admission admission, Supplier<T> work) {
		return Mono.<T>create((sink) -> {
			if (!admission.claim()) {
				sink.error(new IllegalStateException("the request ended before it was queued"));
				return;
			}
			this.engine.execute(admission.tenant(), () -> {
				long begin = System.nanoTime();
				try {
					T result = work.get();
					admission.recordSuccess(System.nanoTime() - begin);
					sink.success(result);
				}
				catch (EngineFailureException | Error ex) {
					admission.recordEngineFailure(System.nanoTime() - begin, ex);
					sink.error(ex);
				}
				catch (RuntimeException ex) {
					sink.error(ex);
				}
				finally {
					admission.releaseClaimed();
				}
			});
		});
	}

	/** Requests waiting for the engine. */
	public int queued() {
		return this.engine.queued();
	}

	@Override
	public void close() {
		this.engine.close();
		this.preparationScheduler.dispose();
		this.preparation.shutdownNow();
	}

}

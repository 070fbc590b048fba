package dev.griffin.serve.generation;

import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
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
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import dev.griffin.serve.observability.GenerationMetrics;

/**
 * The one adapter between the blocking generation loop and the reactive web layer.
 * <p>
 * A request is first admitted on the caller's thread with cheap checks only: its API
 * key's request rate, its key's concurrency cap, the server's bulkhead (running plus
 * queued requests) and the circuit breaker. Its CPU work (rendering, tokenizing,
 * validation, building a GRIFFIN variant) then runs on a small preparation pool, never on
 * Netty's threads, and its token budget (prompt + max_tokens x n) is charged to the key.
 * Generations run on a dedicated pool of inference threads fed round-robin across keys.
 * Each stream's buffer is bounded: the worker waits for the client to read and cancels a
 * stream whose client stops reading for the stall timeout. The deadline counts from
 * admission. Only engine failures count towards the circuit breaker; a request's own
 * fault never does. Cancelling the Flux (a client that disconnects) stops prefill within
 * one chunk and decoding within one step, and every permit is returned on every path.
 */
public final class InferenceScheduler implements AutoCloseable {

	private static final Logger logger = LoggerFactory.getLogger(InferenceScheduler.class);

	/**
	 * Per-key limits.
	 *
	 * @param concurrentRequests running plus queued requests one API key may have
	 * @param tokensPerMinute prompt + max_tokens x n one key may ask for per minute, 0
	 * for no budget
	 * @param stallTimeout how long a worker waits for a client that stopped reading
	 * before it cancels the stream
	 */
	public record Limits(int concurrentRequests, long tokensPerMinute, Duration stallTimeout) {

		public Limits {
			if (concurrentRequests < 1 || tokensPerMinute < 0 || stallTimeout.isNegative() || stallTimeout.isZero()) {
				throw new IllegalArgumentException(
						"per-key concurrency >= 1, a token budget >= 0 and a positive stall timeout are required");
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

	private final FairQueue queue = new FairQueue();

	private final Thread[] workers;

	private final ExecutorService preparation;

	private final Scheduler preparationScheduler;

	private volatile boolean closed;

	public InferenceScheduler(ModelService models, PromptCache cache, GenerationMetrics metrics, int workers,
			Bulkhead bulkhead, CircuitBreaker circuitBreaker, RateLimiterRegistry rateLimiters,
			Duration maxGenerationTime, Limits limits) {
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
		this.workers = new Thread[workers];
		for (int i = 0; i < workers; i++) {
			this.workers[i] = new Thread(this::work, "inference-" + (i + 1));
			this.workers[i].setDaemon(true);
			this.workers[i].start();
		}
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

	/** An inference thread's loop: it ends only when the scheduler closes. */
	private void work() {
		while (!this.closed) {
			Runnable next;
			try {
				next = this.queue.take();
			}
			catch (InterruptedException ex) {
				continue;
			}
			try {
				next.run();
			}
			catch (Throwable ex) {
				// the task reported its own failure; the worker stays for the next one
				logger.error("inference task failed outside a generation", ex);
			}
		}
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
		return new Admission(tenant, tenantBulkhead, this.bulkhead, this.circuitBreaker);
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
		Generator generator = this.models.generator(job.griffin());
		return Flux.create((FluxSink<GenerationEvent> sink) -> {
			if (!admission.claim()) {
				sink.error(new IllegalStateException("the request ended before it was queued"));
				return;
			}
			AtomicBoolean cancelled = new AtomicBoolean();
			sink.onDispose(() -> cancelled.set(true));
			this.metrics.waiting(1);
			this.queue.put(admission.tenant(),
					() -> run(job, generator, new Stream(sink, cancelled, this.limits.stallTimeout()), admission));
		}, FluxSink.OverflowStrategy.BUFFER);
	}

	/**
	 * Runs other model work (an analysis such as flocking) of an admitted request on the
	 * inference pool.
	 */
	public <T> Mono<T> execute(Admission admission, Supplier<T> work) {
		return Mono.<T>create((sink) -> {
			if (!admission.claim()) {
				sink.error(new IllegalStateException("the request ended before it was queued"));
				return;
			}
			this.queue.put(admission.tenant(), () -> {
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

	/**
	 * A job's event sink with a bounded buffer: events are handed over only while the
	 * subscriber has demand. A subscriber that stops reading (a client whose socket is
	 * full) holds the worker at most {@code stallTimeout}, then the stream is cancelled.
	 */
	private static final class Stream {

		private final FluxSink<GenerationEvent> sink;

		private final AtomicBoolean cancelled;

		private final long stallNanos;

		private boolean stalled;

		Stream(FluxSink<GenerationEvent> sink, AtomicBoolean cancelled, Duration stallTimeout) {
			this.sink = sink;
			this.cancelled = cancelled;
			this.stallNanos = stallTimeout.toNanos();
		}

		/**
		 * @return false when the stream is cancelled or its reader stalled
		 */
		boolean emit(GenerationEvent event) {
			long start = System.nanoTime();
			while (this.sink.requestedFromDownstream() <= 0 && !this.cancelled.get()) {
				if (System.nanoTime() - start > this.stallNanos) {
					this.stalled = true;
					this.cancelled.set(true);
					return false;
				}
				LockSupport.parkNanos(2_000_000);
			}
			if (this.cancelled.get()) {
				return false;
			}
			this.sink.next(event);
			return true;
		}

		boolean isCancelled() {
			return this.cancelled.get();
		}

	}

	private void run(GenerationJob job, Generator generator, Stream stream, Admission admission) {
		this.metrics.waiting(-1);
		long begin = System.nanoTime();
		long admitted = admission.admittedNanos();
		this.metrics.queued(begin - admitted);
		this.metrics.running(1);
		boolean useCache = this.cache != null && job.useCache()
				&& (!job.griffin().isRandomized() || job.params().seed() != null);
		try {
			if (stream.isCancelled()) {
				this.metrics.cancelled();
				return;
			}
			long deadline = admitted + this.maxGenerationTime.toNanos();
			boolean firstToken = true;
			for (int choice = 0; choice < job.choices() && !stream.isCancelled(); choice++) {
				SamplingParams params = (choice == 0 || job.params().seed() == null) ? job.params()
						: withSeed(job.params(), job.params().seed() + choice);
				PromptCache.Key key = useCache ? this.models.cacheKey(job.griffin(), params.seed(), job.tenantSalt(),
						admission.tenant(), job.prompt()) : null;
				int index = choice;
				long[] last = { 0 };
				boolean[] first = { firstToken };
				Generator.Result result = generator.generate(job.prompt(), params,
						new Generator.Options(job.topLogprobs(), useCache ? this.cache : null, key, deadline),
						new Generator.Listener() {
							@Override
							public boolean isCancelled() {
								return stream.isCancelled();
							}

							@Override
							public boolean onPromptProcessed(boolean cacheHit) {
								return stream.emit(new GenerationEvent.Started(index, cacheHit));
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
								return stream.emit(new GenerationEvent.Token(index, token));
							}
						});
				firstToken = first[0];
				logger.info("choice {} of a request: {} prompt tokens, {} generated, finish {}, cache {}, {} ms", index,
						result.promptTokens(), result.tokens().length, result.finishReason(),
						result.cacheHit() ? "hit" : "miss", (System.nanoTime() - admitted) / 1_000_000);
				this.metrics.finished(System.nanoTime() - admitted, result.promptTokens(), result.tokens().length,
						job.griffin().density(), useCache, result.cacheHit());
				if (result.finishReason() == FinishReason.CANCELLED) {
					this.metrics.cancelled();
					if (stream.stalled) {
						logger.warn("stream cancelled: its client read nothing for {} ({} tokens generated)",
								this.limits.stallTimeout(), result.tokens().length);
						stream.sink.error(new StreamStalledException(this.limits.stallTimeout()));
						return;
					}
					logger.info("generation cancelled by the client after {} tokens", result.tokens().length);
					break;
				}
				if (!stream.emit(new GenerationEvent.Finished(index, result))) {
					break;
				}
			}
			admission.recordSuccess(System.nanoTime() - begin);
			stream.sink.complete();
		}
		catch (EngineFailureException | Error ex) {
			this.metrics.failed();
			admission.recordEngineFailure(System.nanoTime() - begin, ex);
			logger.error("generation failed in the engine: {}", ex.toString(), ex);
			stream.sink.error(ex);
		}
		catch (RuntimeException ex) {
			// the request's fault, its time budget, or a defect outside the engine: this
			// request fails, the breaker does not count it
			if (!(ex instanceof IllegalArgumentException || ex instanceof GenerationTimeoutException)) {
				this.metrics.failed();
				logger.error("generation failed: {}", ex.toString(), ex);
			}
			stream.sink.error(ex);
		}
		finally {
			this.metrics.running(-1);
			admission.releaseClaimed();
		}
	}

	private static SamplingParams withSeed(SamplingParams p, long seed) {
		return new SamplingParams(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(),
				p.presencePenalty(), p.frequencyPenalty(), seed, p.maxNewTokens(), p.stopStrings(), p.stopTokenIds(),
				p.ignoreEos());
	}

	/** Requests waiting for an inference thread. */
	public int queued() {
		return this.queue.size();
	}

	@Override
	public void close() {
		this.closed = true;
		for (Thread worker : this.workers) {
			worker.interrupt();
		}
		this.preparationScheduler.dispose();
		this.preparation.shutdownNow();
	}

}

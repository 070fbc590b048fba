package dev.griffin.serve.generation;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;

/**
 * A request's admission: the permits it holds (its tenant's concurrency slot, a slot of
 * the server's bulkhead, a call of the circuit breaker) and when it was admitted (its
 * deadline counts from then). Whoever ends the request's life returns the permits, once:
 * the worker that ran it, or, for a request that never reached a worker (its client left
 * before the response body was subscribed, or preparing it failed), the web layer when
 * the exchange ends. Until a worker claims it or its permits are returned, it counts as
 * being prepared ({@link InferenceScheduler#preparing()}).
 */
public final class Admission {

	private static final int ADMITTED = 0;

	private static final int CLAIMED = 1;

	private static final int RELEASED = 2;

	private final String tenant;

	private final long admittedNanos;

	private final Bulkhead tenantBulkhead;

	private final Bulkhead bulkhead;

	private final CircuitBreaker circuitBreaker;

	private final AtomicInteger state = new AtomicInteger(ADMITTED);

	private final AtomicInteger preparing;

	private volatile boolean outcomeRecorded;

	/**
	 * @param preparing the count of admissions neither claimed nor released, which this
	 * one joins until it is either
	 */
	Admission(String tenant, Bulkhead tenantBulkhead, Bulkhead bulkhead, CircuitBreaker circuitBreaker,
			AtomicInteger preparing) {
		this.tenant = tenant;
		this.admittedNanos = System.nanoTime();
		this.tenantBulkhead = tenantBulkhead;
		this.bulkhead = bulkhead;
		this.circuitBreaker = circuitBreaker;
		this.preparing = preparing;
		preparing.incrementAndGet();
	}

	/** The API key the request is charged to, or null without keys. */
	public String tenant() {
		return this.tenant;
	}

	/** {@link System#nanoTime()} at admission. */
	public long admittedNanos() {
		return this.admittedNanos;
	}

	/** Hands the permits to a worker; false if they were already returned. */
	boolean claim() {
		if (this.state.compareAndSet(ADMITTED, CLAIMED)) {
			this.preparing.decrementAndGet();
			return true;
		}
		return false;
	}

	/**
	 * Returns the permits unless a worker has claimed them (the worker returns them when
	 * it is done). Safe to call any number of times, from any thread.
	 */
	public void releaseUnclaimed() {
		if (this.state.compareAndSet(ADMITTED, RELEASED)) {
			this.preparing.decrementAndGet();
			returnPermits();
		}
	}

	/** The worker's release, after it recorded the outcome (or none). */
	void releaseClaimed() {
		if (this.state.compareAndSet(CLAIMED, RELEASED)) {
			returnPermits();
		}
	}

	/** Whether the permits are back (for tests and metrics). */
	public boolean isReleased() {
		return this.state.get() == RELEASED;
	}

	void recordSuccess(long nanos) {
		this.outcomeRecorded = true;
		this.circuitBreaker.onSuccess(nanos, TimeUnit.NANOSECONDS);
	}

	void recordEngineFailure(long nanos, Throwable failure) {
		this.outcomeRecorded = true;
		this.circuitBreaker.onError(nanos, TimeUnit.NANOSECONDS, failure);
	}

	private void returnPermits() {
		if (!this.outcomeRecorded) {
			// neither success nor an engine failure: the request's own fault, a
			// cancellation or a timeout, which the breaker does not count
			this.circuitBreaker.releasePermission();
		}
		this.bulkhead.onComplete();
		if (this.tenantBulkhead != null) {
			this.tenantBulkhead.onComplete();
		}
	}

}

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
 * <p>
 * A request may run as several jobs (a completion of several prompts,
 * {@link #jobs(int)}): each job is claimed and released on its own, the permits are
 * claimed with the first and returned with the last, and the breaker hears one outcome:
 * the first engine failure, or a success once every job has succeeded.
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

	// guarded by this: the request's jobs, those claimed, released and succeeded, and
	// whether the request ended with jobs that no worker claimed (they never will be)
	private int jobs = 1;

	private int claims;

	private int releases;

	private int successes;

	private boolean closed;

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

	/**
	 * Declares that the request runs as {@code count} jobs, before any is claimed.
	 * @throws IllegalStateException once a job was claimed or the permits returned
	 */
	public synchronized void jobs(int count) {
		if (count < 1 || this.claims > 0 || this.state.get() != ADMITTED) {
			throw new IllegalStateException("the jobs of a request are declared once, before any is claimed");
		}
		this.jobs = count;
	}

	/**
	 * Hands a job the permits (the first job takes them from the request); false if they
	 * were already returned or every job has claimed them.
	 */
	synchronized boolean claim() {
		if (this.closed || this.claims == this.jobs) {
			return false;
		}
		if (this.claims == 0) {
			if (!this.state.compareAndSet(ADMITTED, CLAIMED)) {
				return false;
			}
			this.preparing.decrementAndGet();
		}
		this.claims++;
		return true;
	}

	/**
	 * Returns the permits unless a worker has claimed them (the worker returns them when
	 * it is done); of a request of several jobs, closes the jobs no worker claimed, and
	 * returns the permits once the claimed ones are released. Safe to call any number of
	 * times, from any thread.
	 */
	public synchronized void releaseUnclaimed() {
		if (this.state.compareAndSet(ADMITTED, RELEASED)) {
			this.preparing.decrementAndGet();
			returnPermits();
			return;
		}
		if (this.state.get() == CLAIMED && !this.closed && this.claims < this.jobs) {
			this.closed = true;
			if (this.releases == this.claims) {
				this.state.set(RELEASED);
				returnPermits();
			}
		}
	}

	/**
	 * A job's release, after it recorded its outcome (or none); the last returns the
	 * permits.
	 */
	synchronized void releaseClaimed() {
		if (this.state.get() != CLAIMED || this.releases == this.claims) {
			return;
		}
		this.releases++;
		if (this.releases == (this.closed ? this.claims : this.jobs)) {
			this.state.set(RELEASED);
			returnPermits();
		}
	}

	/** Whether the permits are back (for tests and metrics). */
	public boolean isReleased() {
		return this.state.get() == RELEASED;
	}

	/**
	 * A job's success: the request's, once all its jobs have succeeded and none failed.
	 */
	synchronized void recordSuccess(long nanos) {
		if (!this.outcomeRecorded && ++this.successes == this.jobs) {
			this.outcomeRecorded = true;
			this.circuitBreaker.onSuccess(nanos, TimeUnit.NANOSECONDS);
		}
	}

	/** A job's engine failure: the request's outcome, unless one was recorded. */
	synchronized void recordEngineFailure(long nanos, Throwable failure) {
		if (!this.outcomeRecorded) {
			this.outcomeRecorded = true;
			this.circuitBreaker.onError(nanos, TimeUnit.NANOSECONDS, failure);
		}
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

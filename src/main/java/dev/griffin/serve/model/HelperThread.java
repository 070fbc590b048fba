package dev.griffin.serve.model;

import java.util.concurrent.locks.LockSupport;
import java.util.function.Supplier;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDScope;
import ai.djl.pytorch.jni.JniUtils;

/**
 * A second thread for one engine thread: it computes one half of a product while the
 * engine thread computes the other. Both run libtorch with one intra-op thread, so the
 * two halves use both cores without an OpenMP team spinning beside them. The hand-off
 * spins for a short while before parking, because in a decode step the next half arrives
 * within a millisecond; a parked helper whose engine thread has ended exits.
 */
final class HelperThread {

	private static final ThreadLocal<HelperThread> HELPERS = ThreadLocal.withInitial(HelperThread::new);

	/** How long either side spins for the other before it parks. */
	private static final long SPIN_NANOS = 200_000;

	private final Thread owner;

	private final Thread thread;

	private volatile Supplier<NDArray> task;

	private volatile NDArray result;

	private volatile Throwable failure;

	private volatile boolean done;

	private HelperThread() {
		this.owner = Thread.currentThread();
		this.thread = new Thread(this::serve, this.owner.getName() + "-helper");
		this.thread.setDaemon(true);
		this.thread.start();
	}

	/**
	 * Runs {@code other} on the calling thread's helper and {@code own} on the calling
	 * thread, and returns both results, [own, other]. The results belong to the calling
	 * thread's current {@link NDScope}.
	 */
	static NDArray[] both(Supplier<NDArray> own, Supplier<NDArray> other) {
		return HELPERS.get().run(own, other);
	}

	private NDArray[] run(Supplier<NDArray> own, Supplier<NDArray> other) {
		this.done = false;
		this.failure = null;
		this.task = other;
		LockSupport.unpark(this.thread);
		NDArray mine;
		try {
			mine = own.get();
		}
		finally {
			awaitDone();
		}
		Throwable failure = this.failure;
		if (failure instanceof RuntimeException runtime) {
			throw runtime;
		}
		if (failure instanceof Error error) {
			throw error;
		}
		NDArray theirs = this.result;
		this.result = null;
		NDScope.register(theirs);
		return new NDArray[] { mine, theirs };
	}

	private void awaitDone() {
		long start = System.nanoTime();
		while (!this.done) {
			if (System.nanoTime() - start < SPIN_NANOS) {
				Thread.onSpinWait();
			}
			else if (!this.thread.isAlive()) {
				// cannot happen while serve() catches everything: fail the step rather
				// than wait for ever
				throw new IllegalStateException(this.thread.getName() + " has ended");
			}
			else {
				LockSupport.parkNanos(this, 50_000);
			}
		}
	}

	private void serve() {
		JniUtils.setNumThreads(1);
		while (true) {
			Supplier<NDArray> next = awaitTask();
			if (next == null) {
				return; // the engine thread has ended
			}
			try (NDScope scope = new NDScope()) {
				NDArray value = next.get();
				NDScope.unregister(value);
				this.result = value;
			}
			catch (RuntimeException | Error ex) {
				// an Error too: the engine thread rethrows it, and this thread lives on
				// for the next product
				this.failure = ex;
			}
			finally {
				this.task = null;
				this.done = true;
				LockSupport.unpark(this.owner);
			}
		}
	}

	private Supplier<NDArray> awaitTask() {
		long start = System.nanoTime();
		while (true) {
			Supplier<NDArray> next = this.task;
			if (next != null) {
				return next;
			}
			if (System.nanoTime() - start < SPIN_NANOS) {
				Thread.onSpinWait();
			}
			else if (!this.owner.isAlive()) {
				return null;
			}
			else {
				LockSupport.parkNanos(this, 1_000_000_000L);
			}
		}
	}

}

package dev.griffin.serve.generation;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * An admission counts as being prepared from its creation until a worker claims it or its
 * permits are returned, once whichever comes first and however often either is called.
 */
class AdmissionTests {

	private final CircuitBreaker breaker = CircuitBreaker.ofDefaults("engine");

	private final Bulkhead bulkhead = Bulkhead.of("generation",
			BulkheadConfig.custom().maxConcurrentCalls(10).maxWaitDuration(Duration.ZERO).build());

	private final AtomicInteger preparing = new AtomicInteger();

	private Admission admit() {
		assertThat(this.bulkhead.tryAcquirePermission()).isTrue();
		assertThat(this.breaker.tryAcquirePermission()).isTrue();
		return new Admission(null, null, this.bulkhead, this.breaker, this.preparing);
	}

	@Test
	void preparationEndsOnceAtClaimOrRelease() {
		Admission claimed = admit();
		Admission released = admit();
		Admission third = admit();
		assertThat(this.preparing).hasValue(3);

		assertThat(claimed.claim()).isTrue();
		assertThat(claimed.claim()).isFalse();
		claimed.releaseUnclaimed();
		assertThat(this.preparing).hasValue(2);

		released.releaseUnclaimed();
		released.releaseUnclaimed();
		assertThat(released.claim()).isFalse();
		assertThat(this.preparing).hasValue(1);
		assertThat(released.isReleased()).isTrue();

		third.releaseUnclaimed();
		claimed.releaseClaimed();
		assertThat(this.preparing).hasValue(0);
		assertThat(this.bulkhead.getMetrics().getAvailableConcurrentCalls()).isEqualTo(10);
	}

	/**
	 * A request of several jobs: each claims once, the permits come back with the last
	 * release, and the breaker hears one success when every job has succeeded.
	 */
	@Test
	void severalJobsShareOneAdmission() {
		Admission admission = admit();
		admission.jobs(3);
		assertThat(admission.claim()).isTrue();
		assertThat(this.preparing).as("no longer prepared once the first job is claimed").hasValue(0);
		assertThat(admission.claim()).isTrue();
		assertThat(admission.claim()).isTrue();
		assertThat(admission.claim()).as("three jobs, three claims").isFalse();
		assertThatThrownBy(() -> admission.jobs(2)).isInstanceOf(IllegalStateException.class);
		for (int job = 0; job < 3; job++) {
			admission.recordSuccess(1000);
			admission.releaseUnclaimed();
			assertThat(admission.isReleased()).as("after job %d of 3", job).isEqualTo(false);
			admission.releaseClaimed();
			assertThat(this.breaker.getMetrics().getNumberOfSuccessfulCalls()).as("after job %d of 3", job)
				.isEqualTo(job == 2 ? 1 : 0);
		}
		assertThat(admission.isReleased()).isTrue();
		admission.releaseClaimed();
		assertThat(this.bulkhead.getMetrics().getAvailableConcurrentCalls()).isEqualTo(10);
	}

	/**
	 * Jobs no worker claimed by the time the request ends never will be: the permits come
	 * back with the claimed ones' releases, and one engine failure is the request's one
	 * outcome.
	 */
	@Test
	void aRequestThatEndsClosesItsUnclaimedJobs() {
		Admission admission = admit();
		admission.jobs(3);
		assertThat(admission.claim()).isTrue();
		assertThat(admission.claim()).isTrue();
		admission.recordEngineFailure(1000, new IllegalStateException("engine"));
		admission.recordEngineFailure(1000, new IllegalStateException("engine"));
		admission.releaseUnclaimed();
		assertThat(admission.claim()).as("the request has ended").isFalse();
		admission.releaseClaimed();
		assertThat(admission.isReleased()).isFalse();
		admission.releaseClaimed();
		assertThat(admission.isReleased()).isTrue();
		assertThat(this.breaker.getMetrics().getNumberOfFailedCalls()).isEqualTo(1);
		assertThat(this.bulkhead.getMetrics().getAvailableConcurrentCalls()).isEqualTo(10);

		// a request whose jobs were all released before it ended
		Admission done = admit();
		done.jobs(2);
		assertThat(done.claim()).isTrue();
		done.releaseClaimed();
		done.releaseUnclaimed();
		assertThat(done.isReleased()).as("the second job was never claimed").isTrue();
		assertThat(this.bulkhead.getMetrics().getAvailableConcurrentCalls()).isEqualTo(10);
	}

}

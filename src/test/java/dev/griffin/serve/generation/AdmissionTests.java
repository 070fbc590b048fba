package dev.griffin.serve.generation;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

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

}

package dev.griffin.serve.web;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.bulkhead.BulkheadFullException;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.ratelimiter.RateLimiterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.springframework.mock.http.server.reactive.MockServerHttpRequest;
import org.springframework.mock.web.server.MockServerWebExchange;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilterChain;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;

import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.InferenceScheduler;
import dev.griffin.serve.observability.GenerationMetrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * A POST counts as on its way to the engine ({@link InferenceScheduler#preparing()}) from
 * the filter on: arriving until its admission is asked for, then as its admission, and
 * not at all once refused or ended; other methods never count.
 */
class AdmissionFilterTests {

	private final Bulkhead bulkhead = Bulkhead.of("generation",
			BulkheadConfig.custom().maxConcurrentCalls(1).maxWaitDuration(Duration.ZERO).build());

	private final InferenceScheduler scheduler = scheduler(Duration.ofSeconds(30));

	private final AdmissionFilter filter = new AdmissionFilter(this.scheduler::arrival);

	private InferenceScheduler scheduler(Duration promptGather) {
		return new InferenceScheduler(null, null, new GenerationMetrics(new SimpleMeterRegistry(), null), 4, 0,
				this.bulkhead, CircuitBreaker.ofDefaults("engine"), RateLimiterRegistry.ofDefaults(),
				Duration.ofMinutes(1), new InferenceScheduler.Limits(8, 0, Duration.ofSeconds(30), promptGather, 128));
	}

	@AfterEach
	void close() {
		this.scheduler.close();
	}

	private static MockServerWebExchange post() {
		return MockServerWebExchange.from(MockServerHttpRequest.post("/v1/completions").body("{}"));
	}

	@Test
	void aPostArrivesUntilItsAdmissionThenCountsAsTheAdmission() {
		AtomicInteger seen = new AtomicInteger(-1);
		WebFilterChain chain = (exchange) -> {
			assertThat(this.scheduler.preparing()).as("arrived, body not yet read").isEqualTo(1);
			Admission admission = AdmissionFilter.admit(this.scheduler, exchange);
			seen.set(this.scheduler.preparing());
			assertThat(admission.isReleased()).isFalse();
			return Mono.empty();
		};
		this.filter.filter(post(), chain).block();
		assertThat(seen).as("the admission alone, not the arrival too").hasValue(1);
		assertThat(this.scheduler.preparing()).as("the exchange ended: permits back, nothing counted").isZero();
		assertThat(this.bulkhead.getMetrics().getAvailableConcurrentCalls()).isEqualTo(1);
	}

	@Test
	void aRefusedAdmissionEndsTheArrivalAtOnce() {
		assertThat(this.bulkhead.tryAcquirePermission()).isTrue(); // the server is full
		WebFilterChain chain = (exchange) -> {
			assertThatThrownBy(() -> AdmissionFilter.admit(this.scheduler, exchange))
				.isInstanceOf(BulkheadFullException.class);
			assertThat(this.scheduler.preparing()).isZero();
			return Mono.empty();
		};
		this.filter.filter(post(), chain).block();
		assertThat(this.scheduler.preparing()).isZero();
		this.bulkhead.onComplete();
	}

	@Test
	void aPostEndingWithoutAdmissionStopsCounting() {
		// a body that fails to parse
		assertThatThrownBy(() -> this.filter
			.filter(post(), (exchange) -> Mono.error(new InvalidRequestException(null, "bad", null)))
			.block()).isInstanceOf(InvalidRequestException.class);
		assertThat(this.scheduler.preparing()).isZero();

		// a chain that throws rather than returning an error
		WebFilterChain throwing = (exchange) -> {
			throw new IllegalStateException("broken");
		};
		assertThatThrownBy(() -> this.filter.filter(post(), throwing).block())
			.isInstanceOf(IllegalStateException.class);
		assertThat(this.scheduler.preparing()).isZero();

		// the client gone while its body is read
		Disposable reading = this.filter.filter(post(), (exchange) -> Mono.never()).subscribe();
		assertThat(this.scheduler.preparing()).isEqualTo(1);
		reading.dispose();
		assertThat(this.scheduler.preparing()).isZero();
	}

	@Test
	void arrivalsCountOnlyWhileTheLatestCameWithinTheGatheringTime() throws Exception {
		try (InferenceScheduler brief = scheduler(Duration.ofMillis(200))) {
			Runnable slow = brief.arrival();
			assertThat(brief.preparing()).isEqualTo(1);
			Thread.sleep(400);
			assertThat(brief.preparing()).as("a body still being sent, long after it arrived").isZero();
			Runnable fresh = brief.arrival();
			assertThat(brief.preparing()).as("a new arrival: both are on their way").isEqualTo(2);
			fresh.run();
			fresh.run();
			slow.run();
			assertThat(brief.preparing()).isZero();
		}
	}

	@Test
	void otherMethodsDoNotCount() {
		ServerWebExchange get = MockServerWebExchange.from(MockServerHttpRequest.get("/v1/models"));
		this.filter.filter(get, (exchange) -> {
			assertThat(this.scheduler.preparing()).isZero();
			return Mono.empty();
		}).block();
	}

}

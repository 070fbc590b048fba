package dev.griffin.serve.generation;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class FairQueueTests {

	@Test
	void tenantsAreServedInTurnAndEachInArrivalOrder() {
		FairQueue<Runnable> queue = new FairQueue<>();
		List<String> served = new ArrayList<>();
		for (int i = 1; i <= 3; i++) {
			String name = "a" + i;
			queue.put("alice", () -> served.add(name));
		}
		queue.put("bob", () -> served.add("b1"));
		queue.put(null, () -> served.add("n1"));
		queue.put("bob", () -> served.add("b2"));
		assertThat(queue.size()).isEqualTo(6);
		for (int i = 0; i < 6; i++) {
			queue.poll().run();
		}
		assertThat(served).containsExactly("a1", "b1", "n1", "a2", "b2", "a3");
		assertThat(queue.size()).isZero();
	}

	@Test
	void aNewcomerGoesBeforeTheBacklogOfATenantJustServed() {
		FairQueue<Runnable> queue = new FairQueue<>();
		List<String> served = new ArrayList<>();
		for (int i = 1; i <= 3; i++) {
			String name = "a" + i;
			queue.put("alice", () -> served.add(name));
		}
		// a1 runs; then bob arrives behind alice's two queued requests
		queue.poll().run();
		queue.put("bob", () -> served.add("b1"));
		while (queue.size() > 0) {
			queue.poll().run();
		}
		assertThat(served).containsExactly("a1", "b1", "a2", "a3");
	}

}

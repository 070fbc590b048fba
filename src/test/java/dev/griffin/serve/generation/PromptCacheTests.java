package dev.griffin.serve.generation;

import ai.djl.ndarray.NDArray;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.model.FeedForward;

import static org.assertj.core.api.Assertions.assertThat;

class PromptCacheTests {

	/** An entry of about {@code bytes} (its logits), without native memory. */
	private static PromptCache.Entry entry(int bytes) {
		return new PromptCache.Entry(new int[] { 1 }, new NDArray[0], new NDArray[0], new FeedForward.Prepared[0],
				new float[bytes / 4]);
	}

	private static PromptCache.Key key(String tenant, String hash) {
		return new PromptCache.Key(tenant, hash);
	}

	@Test
	void oneTenantsPromptsNeverEvictAnothers() {
		PromptCache cache = new PromptCache(10_000, 2);
		assertThat(cache.tenantBytes()).isEqualTo(5_000);
		cache.put(key("bob", "bob-1"), entry(1_000));
		for (int i = 0; i < 50; i++) {
			cache.put(key("alice", "alice-" + i), entry(1_000));
		}
		PromptCache.Entry bob = cache.acquire(key("bob", "bob-1"));
		assertThat(bob).as("bob's entry survives alice's flood").isNotNull();
		bob.release();
		assertThat(cache.acquire(key("alice", "alice-0"))).as("alice evicted her own oldest").isNull();
		assertThat(cache.bytes()).isLessThanOrEqualTo(10_000);
		// keys are looked up in the tenant's own share only
		assertThat(cache.acquire(key("alice", "bob-1"))).isNull();
	}

	@Test
	void anEntryLargerThanATenantsShareIsNotKept() {
		PromptCache cache = new PromptCache(10_000, 4);
		assertThat(cache.put(key("alice", "big"), entry(3_000))).isFalse();
		assertThat(cache.put(key("alice", "small"), entry(2_000))).isTrue();
	}

}

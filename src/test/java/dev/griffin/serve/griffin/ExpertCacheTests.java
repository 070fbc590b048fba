package dev.griffin.serve.griffin;

import ai.djl.ndarray.NDArray;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class ExpertCacheTests {

	/** An entry of about {@code bytes} (its logits), without native memory. */
	private static CachedPrompt entry(int bytes) {
		return CachedPrompt.create(new int[] { 1 }, new NDArray[0], new NDArray[0], new LayerExperts[0],
				new float[bytes / 4]);
	}

	@Test
	void oneTenantsPromptsNeverEvictAnothers() {
		ExpertCache cache = new ExpertCache(10_000, 2);
		assertThat(cache.tenantBytes()).isEqualTo(5_000);
		cache.put("bob", "bob-1", entry(1_000));
		for (int i = 0; i < 50; i++) {
			cache.put("alice", "alice-" + i, entry(1_000));
		}
		CachedPrompt bob = cache.acquire("bob", "bob-1");
		assertThat(bob).as("bob's entry survives alice's flood").isNotNull();
		bob.release();
		assertThat(cache.acquire("alice", "alice-0")).as("alice evicted her own oldest").isNull();
		assertThat(cache.bytes()).isLessThanOrEqualTo(10_000);
		// keys are looked up in the tenant's own share only
		assertThat(cache.acquire("alice", "bob-1")).isNull();
	}

	@Test
	void anEntryLargerThanATenantsShareIsNotKept() {
		ExpertCache cache = new ExpertCache(10_000, 4);
		assertThat(cache.put("alice", "big", entry(3_000))).isFalse();
		assertThat(cache.put("alice", "small", entry(2_000))).isTrue();
	}

}

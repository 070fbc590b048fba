package dev.griffin.serve.generation;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import ai.djl.ndarray.types.DataType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.KvCache;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The prompt cache on the default model: hits, byte bound and eviction, sharing between
 * threads.
 */
class PromptCacheIT {

	private static LoadedModel model;

	private static CausalLm griffin;

	@BeforeAll
	static void load() {
		model = LoadedModel.load(Fixtures.defaultModel(), ModelOptions.CPU_FLOAT32, (layers) -> {
		});
		griffin = model.variant(0.5, SelectionMethod.TOPK);
	}

	@AfterAll
	static void close() {
		model.close();
	}

	private static int[] prompt(int i) {
		return model.tokenizer()
			.encode("Prompt number %d asks the model something about rivers and the sea.".formatted(i));
	}

	private static Generator.Result generate(PromptCache cache, int[] prompt) {
		return generate(griffin, cache, prompt);
	}

	private static Generator.Result generate(CausalLm variant, PromptCache cache, int[] prompt) {
		PromptCache.Key key = new PromptCache.Key(null, PromptCache.hash("smollm2", "FLOAT32",
				DensitySchedule.uniform(0.5, 30), SelectionMethod.TOPK, null, null, prompt));
		return new Generator(variant, model.tokenizer()).generate(prompt, SamplingParams.greedy(8),
				new Generator.Options(-1, cache, key, 0), (Generator.Listener) (token) -> true);
	}

	/** Density 1 is the dense model whatever the method: no GRIFFIN copy of its block. */
	@Test
	void densityOneIsTheDenseModelWhateverTheMethod() {
		for (SelectionMethod method : SelectionMethod.values()) {
			assertThat(model.variant(1.0, method)).as(method.wireName()).isSameAs(model.dense());
		}
		assertThat(model.variant(0.75, SelectionMethod.DELAYED)).isNotSameAs(model.dense());
	}

	@Test
	void anExactRepeatIsAHitWithTheSameOutput() {
		PromptCache cache = new PromptCache(1L << 30);
		Generator.Result cold = generate(cache, prompt(0));
		Generator.Result hot = generate(cache, prompt(0));
		Generator.Result uncached = generate(null, prompt(0));
		assertThat(cold.cacheHit()).isFalse();
		assertThat(hot.cacheHit()).isTrue();
		assertThat(hot.tokens()).containsExactly(cold.tokens()).containsExactly(uncached.tokens());
		assertThat(cache.stats().hitCount()).isEqualTo(1);
		cache.invalidateAll();
		assertThat(cache.bytes()).isZero();
	}

	/**
	 * A float16 KV cache's entry keeps the prompt's keys and values in float16: half the
	 * bytes of a float32 cache's entry for them, and a hit restores them and decodes as
	 * the miss did.
	 */
	@Test
	void aFloat16CachesEntryHoldsHalfTheKeyAndValueBytes() {
		CausalLm half = griffin.withKvCache(ModelOptions.Precision.FLOAT16);
		int[] prompt = prompt(7);
		PromptCache wide = new PromptCache(1L << 30);
		PromptCache narrow = new PromptCache(1L << 30);
		generate(wide, prompt);
		Generator.Result cold = generate(half, narrow, prompt);
		Generator.Result hot = generate(half, narrow, prompt);
		Generator.Result uncached = generate(half, null, prompt);
		assertThat(hot.cacheHit()).isTrue();
		assertThat(hot.tokens()).containsExactly(cold.tokens()).containsExactly(uncached.tokens());
		long keysAndValues = KvCache.bytes(model.dense().config(), DataType.FLOAT32, prompt.length);
		assertThat(narrow.bytes()).isEqualTo(wide.bytes() - keysAndValues / 2);
	}

	@Test
	void aBoundedCacheEvictsAndStaysUnderItsLimit() {
		PromptCache probe = new PromptCache(1L << 30);
		generate(probe, prompt(1));
		long entry = probe.bytes();
		probe.invalidateAll();
		// room for two and a half entries
		PromptCache cache = new PromptCache(entry * 5 / 2);
		for (int i = 0; i < 6; i++) {
			generate(cache, prompt(i));
			assertThat(cache.bytes()).as("bytes after %d entries", i + 1).isLessThanOrEqualTo(cache.maximumBytes());
		}
		assertThat(cache.size()).isLessThanOrEqualTo(2);
		assertThat(cache.stats().evictionCount()).isGreaterThanOrEqualTo(4);
		System.out.printf("one cached prompt of %d tokens holds %.1f MB%n", prompt(1).length, entry / 1e6);
		cache.invalidateAll();
	}

	@Test
	void entriesAreSharedSafelyBetweenConcurrentSequences() throws Exception {
		PromptCache cache = new PromptCache(1L << 30);
		int[] prompt = prompt(42);
		Generator.Result first = generate(cache, prompt);
		ExecutorService threads = Executors.newFixedThreadPool(4);
		List<Future<Generator.Result>> results = new ArrayList<>();
		for (int i = 0; i < 8; i++) {
			results.add(threads.submit(() -> generate(cache, prompt)));
			if (i == 3) {
				// evicting while sequences read the entry must not free memory under them
				results.add(threads.submit(() -> {
					cache.invalidateAll();
					return generate(cache, prompt);
				}));
			}
		}
		for (Future<Generator.Result> result : results) {
			assertThat(result.get().tokens()).containsExactly(first.tokens());
		}
		threads.shutdown();
		cache.invalidateAll();
		assertThat(cache.bytes()).isZero();
	}

	@Test
	void tenantSaltsAndSettingsChangeTheKey() {
		int[] tokens = { 1, 2, 3 };
		DensitySchedule half = DensitySchedule.uniform(0.5, 30);
		String alice = PromptCache.hash("m", "FLOAT32", half, SelectionMethod.TOPK, null, "alice", tokens);
		assertThat(PromptCache.hash("m", "FLOAT32", half, SelectionMethod.TOPK, null, "alice", tokens))
			.isEqualTo(alice);
		assertThat(PromptCache.hash("m", "FLOAT32", half, SelectionMethod.TOPK, null, "bob", tokens))
			.isNotEqualTo(alice);
		assertThat(PromptCache.hash("m", "FLOAT16", half, SelectionMethod.TOPK, null, "alice", tokens))
			.isNotEqualTo(alice);
		assertThat(PromptCache.hash("m", "FLOAT32", DensitySchedule.uniform(0.25, 30), SelectionMethod.TOPK, null,
				"alice", tokens))
			.isNotEqualTo(alice);
		assertThat(PromptCache.hash("m", "FLOAT32", half, SelectionMethod.TOPK, null, "alice", new int[] { 1, 2, 4 }))
			.isNotEqualTo(alice);
	}

}

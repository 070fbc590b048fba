package dev.griffin.serve.generation;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import ai.djl.ndarray.types.DataType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.GriffinState;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.FeedForward;
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

	/** What a prompt's run produced: where it started, its logits, experts and reply. */
	private record Run(PromptCache.PrefixStart start, float[] logits, List<int[]> experts, int[] reply) {

	}

	private static PromptCache.Key prefixKey(String tenant, String salt) {
		return new PromptCache.Key(tenant, "unused", PromptCache.prefixBase("smollm2", "FLOAT32", salt));
	}

	/**
	 * Runs a prompt as the engine loop does with a prompt cache: from a cached prefix if
	 * there is one, stopping once to store one where it shares a start with a recent
	 * prompt (with {@code cache} null: the whole prompt, nothing cached); then 8 greedy
	 * tokens.
	 */
	private static Run run(PromptCache cache, PromptCache.Key key, CausalLm variant, int[] prompt) {
		try (InferenceSession session = new InferenceSession(variant, prompt.length + 8)) {
			PromptCache.PrefixStart start = (cache != null) ? cache.startFromPrefix(key, session, prompt)
					: PromptCache.PrefixStart.NONE;
			int from = start.restored();
			if (start.storeAt() > 0) {
				session.prefill(Arrays.copyOfRange(prompt, from, start.storeAt()), 64);
				assertThat(cache.storePrefix(key, session, Arrays.copyOf(prompt, start.storeAt()), variant.manager()))
					.isTrue();
				from = start.storeAt();
			}
			float[] logits = session.prefill(Arrays.copyOfRange(prompt, from, prompt.length), 64);
			session.finishPrompt();
			int[] reply = new int[8];
			float[] next = logits;
			for (int i = 0; i < reply.length; i++) {
				reply[i] = Sampler.argmax(next);
				next = session.decode(reply[i]);
			}
			List<int[]> experts = new ArrayList<>();
			for (int layer = 0; layer < variant.config().numberOfLayers(); layer++) {
				FeedForward.State state = session.state(layer);
				experts.add((state instanceof GriffinState g) ? g.experts().indices() : null);
			}
			return new Run(start, logits, experts, reply);
		}
	}

	private static int[] question(String text) {
		return model.tokenizer()
			.encode("You are a patient geography teacher. Answer in two sentences, plainly, for a child. " + text);
	}

	/**
	 * The second of three prompts that share a start stores it as a prefix, the third
	 * runs only its own rest from there, and its logits, experts and greedy reply are
	 * those of the whole prompt run alone: dense, GRIFFIN {@code topk} and
	 * {@code delayed} (whose statistic of the prefix carries over).
	 */
	@ParameterizedTest
	@ValueSource(strings = { "dense", "topk", "delayed" })
	void aPromptThatSharesARecentPromptsStartRunsOnlyItsOwnRest(String name) {
		CausalLm variant = switch (name) {
			case "dense" -> model.dense();
			case "topk" -> griffin;
			default -> model.variant(0.5, SelectionMethod.DELAYED);
		};
		PromptCache cache = new PromptCache(1L << 30);
		PromptCache.Key key = prefixKey(null, null);
		int[] first = question("Why is the sea salty?");
		int[] second = question("Where do rivers begin?");
		int[] third = question("How do rivers reach the sea?");
		int shared = Arrays.mismatch(second, third);
		assertThat(Arrays.mismatch(first, second)).isEqualTo(shared)
			.isGreaterThanOrEqualTo(PromptCache.MIN_PREFIX_TOKENS);
		assertThat(run(cache, key, variant, first).start()).isEqualTo(PromptCache.PrefixStart.NONE);
		assertThat(run(cache, key, variant, second).start()).isEqualTo(new PromptCache.PrefixStart(0, shared));
		Run restored = run(cache, key, variant, third);
		assertThat(restored.start()).isEqualTo(new PromptCache.PrefixStart(shared, 0));
		Run alone = run(null, key, variant, third);
		assertThat(restored.logits()).containsExactly(alone.logits());
		for (int layer = 0; layer < alone.experts().size(); layer++) {
			assertThat(restored.experts().get(layer)).as("layer %d", layer).isEqualTo(alone.experts().get(layer));
		}
		assertThat(restored.reply()).containsExactly(alone.reply());
		// the prefix is one entry beside nothing else (the runs store no whole prompt)
		assertThat(cache.size()).isEqualTo(1);
		cache.invalidateAll();
		assertThat(cache.bytes()).isZero();
	}

	/**
	 * A prefix serves only its own kind of prompt: another tenant, another salt, or a
	 * session whose layers record another statistic (dense against GRIFFIN) starts from
	 * nothing.
	 */
	@Test
	void aPrefixServesOnlyItsTenantSaltAndStatistics() {
		PromptCache cache = new PromptCache(1L << 30);
		PromptCache.Key mine = prefixKey("alice", "alice-salt");
		run(cache, mine, griffin, question("Why is the sea salty?"));
		run(cache, mine, griffin, question("Where do rivers begin?"));
		int[] third = question("How do rivers reach the sea?");
		assertThat(run(cache, prefixKey("bob", "alice-salt"), griffin, third).start().restored()).isZero();
		assertThat(run(cache, prefixKey("alice", "other-salt"), griffin, third).start().restored()).isZero();
		assertThat(run(cache, mine, model.dense(), third).start().restored()).isZero();
		// GRIFFIN's density does not change a prompt's statistic: 0.25 starts from 0.5's
		assertThat(run(cache, mine, model.variant(0.25, SelectionMethod.TOPK), third).start().restored()).isPositive();
		cache.invalidateAll();
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

package dev.griffin.serve.generation;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.atomic.AtomicReference;

import ai.djl.ndarray.NDManager;
import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.reactivestreams.Subscription;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.GriffinSettings;
import dev.griffin.serve.griffin.GriffinTransform;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.Kernels;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.observability.GenerationMetrics;
import dev.griffin.serve.tokenizer.Tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * The engine loop on a tiny checkpoint: requests that join and leave a running batch
 * (dense and GRIFFIN variants of two densities, prompts of unequal lengths, prompts
 * prefilled over several steps) produce what each produces alone through the sequential
 * {@link Generator}; short prompts arriving together run in one pass; n choices share one
 * prefill; a fault ends its own request only, and a failed batched pass counts once for
 * the breaker; cancellation, stalled readers and deadlines end a request within a step
 * and return its permits; native memory is flat over thousands of batched steps.
 */
class EngineLoopTests {

	/** Small, so that prompts take several steps and decode passes run between them. */
	private static final int PREFILL_CHUNK = 8;

	@TempDir
	static Path tokenizerDirectory;

	private static NDManager manager;

	private static CausalLm dense;

	private static CausalLm half;

	private static CausalLm quarter;

	/** GRIFFIN 0.5 that selects after each reply's first tokens. */
	private static CausalLm delayed;

	/** The dense model and its GRIFFIN 0.5 variant with the native prefill form. */
	private static CausalLm fused;

	private static CausalLm fusedHalf;

	private static Tokenizer tokenizer;

	private final CircuitBreaker breaker = CircuitBreaker.ofDefaults("engine");

	private final Bulkhead bulkhead = Bulkhead.of("generation",
			BulkheadConfig.custom().maxConcurrentCalls(1000).maxWaitDuration(Duration.ZERO).build());

	private final SimpleMeterRegistry registry = new SimpleMeterRegistry();

	private final GenerationMetrics metrics = new GenerationMetrics(this.registry, null);

	@BeforeAll
	static void load() {
		manager = NDManager.newBaseManager();
		// one compute thread: a tiny model's products are too small to share, and waking
		// a second thread for each one costs more than the product
		dense = Fixtures.tinyModel("tiny-llama", ModelOptions.CPU_FLOAT32, manager)
			.withKernels(new Kernels(Kernels.Decode.SINGLE, Kernels.Prefill.WEIGHTS, 1));
		int layers = dense.config().numberOfLayers();
		half = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.TOPK);
		quarter = GriffinTransform.apply(dense, DensitySchedule.uniform(0.25, layers), SelectionMethod.TOPK);
		delayed = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.DELAYED);
		fused = dense.withKernels(new Kernels(Kernels.Decode.SINGLE, Kernels.Prefill.NATIVE, 1));
		fusedHalf = GriffinTransform.apply(fused, DensitySchedule.uniform(0.5, layers), SelectionMethod.TOPK);
		tokenizer = Fixtures.byteTokenizer(tokenizerDirectory);
	}

	@AfterAll
	static void close() {
		manager.close();
	}

	private EngineLoop loop(int maxSequences, PromptCache cache, Duration stallTimeout) {
		return new EngineLoop(maxSequences, PREFILL_CHUNK, cache, this.metrics, stallTimeout);
	}

	private Admission admit() {
		assertThat(this.bulkhead.tryAcquirePermission()).isTrue();
		assertThat(this.breaker.tryAcquirePermission()).isTrue();
		Admission admission = new Admission(null, null, this.bulkhead, this.breaker, new AtomicInteger());
		assertThat(admission.claim()).isTrue();
		return admission;
	}

	private static int[] bytes(String text) {
		byte[] raw = text.getBytes(StandardCharsets.UTF_8);
		int[] ids = new int[raw.length];
		for (int i = 0; i < raw.length; i++) {
			ids[i] = raw[i] & 0xFF;
		}
		return ids;
	}

	private static double density(CausalLm model) {
		return (model == half || model == fusedHalf || model == delayed) ? 0.5 : (model == quarter) ? 0.25 : 1.0;
	}

	/** A request of the test. */
	private record Ask(CausalLm model, String prompt, SamplingParams params, int choices) {

		GenerationJob job() {
			return new GenerationJob(bytes(this.prompt), this.params,
					new GriffinSettings(density(this.model),
							(this.model == delayed) ? SelectionMethod.DELAYED : SelectionMethod.TOPK),
					this.choices, -1, true, null, null, false);
		}

	}

	private EngineLoop.Submission submission(Ask ask, EngineProbe probe, PromptCache.Key key, long deadline) {
		return new EngineLoop.Submission(ask.job(), ask.model(), tokenizer, probe, key, deadline, admit());
	}

	private static Flux<GenerationEvent> events(EngineLoop loop, EngineLoop.Submission submission) {
		return Flux.create((FluxSink<GenerationEvent> sink) -> loop.submit(submission, sink, new AtomicBoolean()),
				FluxSink.OverflowStrategy.BUFFER);
	}

	/** Each choice's tokens, from a finished request's events. */
	private static Map<Integer, int[]> tokens(List<GenerationEvent> events) {
		Map<Integer, int[]> tokens = new java.util.HashMap<>();
		for (GenerationEvent event : events) {
			if (event instanceof GenerationEvent.Finished finished) {
				tokens.put(finished.choice(), finished.result().tokens());
			}
		}
		return tokens;
	}

	/** Each choice's timings, from a finished request's events. */
	private static Map<Integer, Generator.Timings> timings(List<GenerationEvent> events) {
		Map<Integer, Generator.Timings> timings = new java.util.HashMap<>();
		for (GenerationEvent event : events) {
			if (event instanceof GenerationEvent.Finished finished) {
				timings.put(finished.choice(), finished.result().timings());
			}
		}
		return timings;
	}

	/** What the sequential generator produces for a choice alone. */
	private static int[] alone(Ask ask, int choice) {
		SamplingParams params = (choice == 0) ? ask.params() : ask.params().withSeed(ask.params().seed() + choice);
		return new Generator(ask.model(), tokenizer).generate(bytes(ask.prompt()), params, (token, text) -> true)
			.tokens();
	}

	private static SamplingParams greedy(int maxTokens) {
		return new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0L, maxTokens, List.of(), List.of(), true);
	}

	private static SamplingParams sampled(int maxTokens, long seed) {
		return new SamplingParams(0.8, 0, 0.95, 0, 1, 0, 0, seed, maxTokens, List.of(), List.of(), true);
	}

	@Test
	void requestsJoiningAndLeavingABatchGenerateWhatTheyGenerateAlone() throws Exception {
		List<Ask> asks = List.of(new Ask(dense, "The quick brown fox", greedy(12), 1),
				new Ask(half, "a", greedy(20), 1),
				new Ask(quarter, "Pack my box with five dozen liquor jugs, then close it", greedy(7), 1),
				new Ask(dense, "Sphinx of black quartz", sampled(15, 7), 2), new Ask(half, "Hello", greedy(9), 3),
				new Ask(dense, "How vexingly quick daft zebras jump", greedy(25), 1),
				new Ask(quarter, "xyz", sampled(11, 3), 1), new Ask(delayed, "Waltz, bad nymph", greedy(16), 1),
				new Ask(delayed, "for quick jigs vex", sampled(14, 5), 2));
		List<List<GenerationEvent>> results = new ArrayList<>();
		try (EngineLoop loop = loop(4, null, Duration.ofSeconds(30))) {
			List<reactor.core.publisher.Mono<List<GenerationEvent>>> running = new ArrayList<>();
			for (Ask ask : asks) {
				running.add(events(loop, submission(ask, EngineProbe.NONE, null, 0)).collectList().cache());
				running.get(running.size() - 1).subscribe();
			}
			for (var events : running) {
				results.add(events.block(Duration.ofSeconds(60)));
			}
		}
		for (int i = 0; i < asks.size(); i++) {
			Ask ask = asks.get(i);
			Map<Integer, int[]> tokens = tokens(results.get(i));
			assertThat(tokens).as("request %d", i).hasSize(ask.choices());
			for (int choice = 0; choice < ask.choices(); choice++) {
				assertThat(tokens.get(choice)).as("request %d choice %d", i, choice).isEqualTo(alone(ask, choice));
			}
		}
		// several sequences shared decode passes
		assertThat(this.registry.get("griffin.engine.batch.size").summary().max()).isEqualTo(4);
	}

	/**
	 * A scored prompt (echo with logprobs): one PromptScored before the first choice
	 * starts, with each prompt token's log-probability given the tokens before it, as one
	 * pass over the whole prompt gives them, over several prompt chunks; the choices
	 * generate what they generate unscored.
	 */
	@Test
	void aScoredPromptCarriesEachTokensLogprob() throws Exception {
		Ask ask = new Ask(half, "Scored over several chunks of eight", greedy(6), 2);
		int[] prompt = bytes(ask.prompt());
		GenerationJob job = new GenerationJob(prompt, ask.params(), new GriffinSettings(0.5, SelectionMethod.TOPK),
				ask.choices(), 3, false, null, null, true);
		List<GenerationEvent> events;
		try (EngineLoop loop = loop(4, null, Duration.ofSeconds(30))) {
			events = events(loop, new EngineLoop.Submission(job, half, tokenizer, EngineProbe.NONE, null, 0, admit()))
				.collectList()
				.block(Duration.ofSeconds(60));
		}
		assertThat(events.get(0)).isInstanceOf(GenerationEvent.PromptScored.class);
		assertThat(events.stream().filter((event) -> event instanceof GenerationEvent.PromptScored)).hasSize(1);
		List<GeneratedToken> scored = ((GenerationEvent.PromptScored) events.get(0)).tokens();
		assertThat(scored.stream().mapToInt(GeneratedToken::id).toArray()).containsExactly(prompt);
		assertThat(scored.stream().map(GeneratedToken::text).reduce("", String::concat)).isEqualTo(ask.prompt());
		assertThat(scored.get(0).logprob()).isNaN();
		assertThat(scored.get(0).topLogprobs()).isEmpty();
		float[][] rows;
		try (InferenceSession session = new InferenceSession(half, prompt.length)) {
			rows = session.prefillAllLogits(prompt);
		}
		for (int t = 1; t < prompt.length; t++) {
			float[] logits = rows[t - 1];
			double logZ = Sampler.logSumExp(logits);
			assertThat((double) scored.get(t).logprob()).as("token %d", t)
				.isCloseTo(logits[prompt[t]] - logZ, org.assertj.core.data.Offset.offset(1e-4));
			assertThat(scored.get(t).topLogprobs().stream().mapToInt(GeneratedToken.TopLogprob::id).toArray())
				.containsExactly(Sampler.largest(logits, 3));
		}
		Map<Integer, int[]> tokens = tokens(events);
		for (int choice = 0; choice < ask.choices(); choice++) {
			assertThat(tokens.get(choice)).as("choice %d", choice).isEqualTo(alone(ask, choice));
		}
	}

	@Test
	void shortPromptsArrivingTogetherShareOneStepsPrefill() throws Exception {
		// a budget of 4 passes (EngineLoop.PASS_TOKENS each) per step
		List<Ask> asks = List.of(new Ask(dense, "one", greedy(5), 1), new Ask(half, "two prompts", greedy(5), 1),
				new Ask(quarter, "three", greedy(5), 1), new Ask(dense, "and a fourth", greedy(5), 1));
		// the four arrive before the loop's next step
		List<List<GenerationEvent>> results = heldUntilAllQueued(asks, EngineProbe.NONE);
		for (int i = 0; i < asks.size(); i++) {
			assertThat(tokens(results.get(i)).get(0)).as("request %d", i).isEqualTo(alone(asks.get(i), 0));
		}
		// all four prompts ran in the first step, so every decode pass ran all four
		var passes = this.registry.get("griffin.engine.batch.size").summary();
		assertThat(passes.count()).as("decode passes").isEqualTo(4);
		assertThat(passes.totalAmount()).as("sequences over those passes").isEqualTo(16);
	}

	/**
	 * Dense and GRIFFIN requests' short prompts arriving together, with the native
	 * prefill form: one pass runs all four (each prompt's end then its own step of the
	 * "prefill" phase), and each request generates what it generates alone. When that
	 * pass fails, all four fail and the breaker counts one failure.
	 */
	@Test
	void shortPromptsArrivingTogetherRunInOnePass() throws Exception {
		List<Ask> asks = List.of(new Ask(fused, "one", greedy(5), 1), new Ask(fusedHalf, "two prompts", greedy(5), 1),
				new Ask(fused, "t", greedy(5), 1), new Ask(fusedHalf, "and a fourth", greedy(5), 1));
		AtomicInteger prefills = new AtomicInteger();
		EngineProbe counting = (phase) -> {
			if (phase.equals("prefill")) {
				prefills.incrementAndGet();
			}
		};
		List<List<GenerationEvent>> results = new ArrayList<>();
		for (List<GenerationEvent> events : heldUntilAllQueued(asks, counting)) {
			assertThat(events).as("a request failed").isNotNull();
			results.add(events);
		}
		for (int i = 0; i < asks.size(); i++) {
			assertThat(tokens(results.get(i)).get(0)).as("request %d", i).isEqualTo(alone(asks.get(i), 0));
		}
		assertThat(prefills.get()).as("the shared pass, then each prompt's end").isEqualTo(1 + asks.size());

		EngineProbe failing = (phase) -> {
			if (phase.equals("prefill")) {
				throw new IllegalStateException("injected fault in a shared prompt pass");
			}
		};
		assertThat(heldUntilAllQueued(asks, failing)).as("every request failed").containsOnlyNulls();
		assertThat(this.breaker.getMetrics().getNumberOfFailedCalls()).isEqualTo(1);
	}

	/**
	 * A prompt that reaches an idle loop while another admitted request is still being
	 * prepared waits for it, at most the gathering time, and the two then share one pass;
	 * without a gathering time it starts its pass alone. A loop with a sequence decoding
	 * holds nothing.
	 */
	@Test
	void aLongPromptRunsInSmallerChunksWhileOthersDecode() throws Exception {
		AtomicInteger passes = new AtomicInteger();
		EngineProbe counting = (phase) -> {
			if (phase.equals("prefill")) {
				passes.incrementAndGet(); // each chunk's pass, and the prompt's end
			}
		};
		// 180 prompt tokens: one chunk within the loop's 200, two within 128
		Ask longPrompt = new Ask(dense, "The river rises in the hills above the town. ".repeat(4), greedy(2), 1);
		assertThat(bytes(longPrompt.prompt())).hasSize(180);
		try (EngineLoop loop = new EngineLoop(4, 200, null, this.metrics, Duration.ofSeconds(30))) {
			var idle = events(loop, submission(longPrompt, counting, null, 0)).collectList().toFuture();
			assertThat(tokens(idle.get(60, TimeUnit.SECONDS)).get(0)).isEqualTo(alone(longPrompt, 0));
			assertThat(passes.getAndSet(0)).as("alone: one chunk, then the prompt's end").isEqualTo(2);

			CountDownLatch decoding = new CountDownLatch(1);
			// at least a second of decoding: 5 ms before each of its 200 tokens
			EngineProbe slow = (phase) -> {
				if (phase.equals("sample")) {
					LockSupport.parkNanos(5_000_000);
				}
			};
			var other = events(loop, submission(new Ask(dense, "go", greedy(200), 1), slow, null, 0))
				.doOnNext((event) -> decoding.countDown())
				.collectList()
				.toFuture();
			assertThat(decoding.await(30, TimeUnit.SECONDS)).isTrue();
			var busy = events(loop, submission(longPrompt, counting, null, 0)).collectList().toFuture();
			assertThat(tokens(busy.get(60, TimeUnit.SECONDS)).get(0)).isEqualTo(alone(longPrompt, 0));
			assertThat(other.isDone()).as("the other request still decoded meanwhile").isFalse();
			assertThat(passes.get()).as("beside a decoding request: two chunks, then the prompt's end").isEqualTo(3);
			other.get(60, TimeUnit.SECONDS);
		}
	}

	@Test
	void anIdleLoopHoldsAPromptForRequestsStillBeingPrepared() throws Exception {
		Ask first = new Ask(fused, "one", greedy(5), 1);
		Ask second = new Ask(fusedHalf, "two prompts", greedy(5), 1);
		AtomicInteger prefills = new AtomicInteger();
		EngineProbe counting = (phase) -> {
			if (phase.equals("prefill")) {
				prefills.incrementAndGet();
			}
		};
		AtomicInteger preparing = new AtomicInteger();
		try (EngineLoop loop = new EngineLoop(4, EngineLoop.ARENA_TOKENS_PER_SEQUENCE, 4 * EngineLoop.PASS_TOKENS,
				EngineLoop.DECODING_BUDGET, null, this.metrics, Duration.ofSeconds(30), preparing::get,
				Duration.ofSeconds(30))) {
			preparing.set(1);
			var one = events(loop, submission(first, counting, null, 0)).collectList().toFuture();
			Thread.sleep(300);
			assertThat(prefills.get()).as("held while the other is prepared").isZero();
			preparing.set(0);
			var two = events(loop, submission(second, counting, null, 0)).collectList().toFuture();
			assertThat(tokens(one.get(60, TimeUnit.SECONDS)).get(0)).isEqualTo(alone(first, 0));
			assertThat(tokens(two.get(60, TimeUnit.SECONDS)).get(0)).isEqualTo(alone(second, 0));
			assertThat(prefills.get()).as("one shared pass, then each prompt's end").isEqualTo(3);
			var passes = this.registry.get("griffin.engine.prompt.pass.sequences").summary();
			assertThat(passes.count()).as("one prompt pass").isEqualTo(1);
			assertThat(passes.totalAmount()).as("of both sequences").isEqualTo(2);

			// a request past its prompt (its client has read one event and waits): the
			// next prompt runs at once though another request is being prepared
			CountDownLatch decoding = new CountDownLatch(1);
			BaseSubscriber<GenerationEvent> reader = new BaseSubscriber<>() {
				@Override
				protected void hookOnSubscribe(Subscription subscription) {
					request(1);
				}

				@Override
				protected void hookOnNext(GenerationEvent event) {
					decoding.countDown();
				}
			};
			events(loop, submission(new Ask(fused, "long", greedy(20), 1), EngineProbe.NONE, null, 0))
				.subscribe(reader);
			assertThat(decoding.await(30, TimeUnit.SECONDS)).isTrue();
			preparing.set(1);
			long start = System.nanoTime();
			var late = events(loop, submission(first, EngineProbe.NONE, null, 0)).collectList().toFuture();
			assertThat(tokens(late.get(60, TimeUnit.SECONDS)).get(0)).isEqualTo(alone(first, 0));
			assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(15));
			reader.dispose();
		}

		// the hold ends after the gathering time even if nothing else arrives
		prefills.set(0);
		try (EngineLoop loop = new EngineLoop(4, EngineLoop.ARENA_TOKENS_PER_SEQUENCE, 4 * EngineLoop.PASS_TOKENS,
				EngineLoop.DECODING_BUDGET, null, this.metrics, Duration.ofSeconds(30), () -> 1,
				Duration.ofMillis(100))) {
			var one = events(loop, submission(first, counting, null, 0)).collectList().toFuture();
			assertThat(tokens(one.get(60, TimeUnit.SECONDS)).get(0)).isEqualTo(alone(first, 0));
		}

		// without a gathering time the first prompt does not wait
		prefills.set(0);
		try (EngineLoop loop = new EngineLoop(4, EngineLoop.ARENA_TOKENS_PER_SEQUENCE, 4 * EngineLoop.PASS_TOKENS,
				EngineLoop.DECODING_BUDGET, null, this.metrics, Duration.ofSeconds(30), () -> 1, Duration.ZERO)) {
			var one = events(loop, submission(first, counting, null, 0)).collectList().toFuture();
			await().atMost(Duration.ofSeconds(10)).until(() -> prefills.get() > 0);
			assertThat(tokens(one.get(60, TimeUnit.SECONDS)).get(0)).isEqualTo(alone(first, 0));
		}
		var passes = this.registry.get("griffin.engine.prompt.pass.sequences").summary();
		assertThat(passes.count()).as("the shared pass, then four of one prompt each").isEqualTo(5);
		assertThat(passes.max()).isEqualTo(2);
	}

	/**
	 * Submits the asks while the loop is held, so that all of them are queued before its
	 * next step; each one's events, or null where it failed with an engine failure.
	 */
	private List<List<GenerationEvent>> heldUntilAllQueued(List<Ask> asks, EngineProbe probe) throws Exception {
		List<List<GenerationEvent>> results = new ArrayList<>();
		try (EngineLoop loop = new EngineLoop(4, 4 * EngineLoop.PASS_TOKENS, null, this.metrics,
				Duration.ofSeconds(30))) {
			CountDownLatch holding = new CountDownLatch(1);
			CountDownLatch release = new CountDownLatch(1);
			loop.execute("test", () -> {
				holding.countDown();
				try {
					release.await();
				}
				catch (InterruptedException ex) {
					Thread.currentThread().interrupt();
				}
			});
			assertThat(holding.await(10, TimeUnit.SECONDS)).isTrue();
			List<java.util.concurrent.CompletableFuture<List<GenerationEvent>>> running = new ArrayList<>();
			for (Ask ask : asks) {
				running.add(events(loop, submission(ask, probe, null, 0)).collectList().onErrorResume((ex) -> {
					assertThat(ex).isInstanceOf(EngineFailureException.class);
					return reactor.core.publisher.Mono.empty();
				}).toFuture());
			}
			await().atMost(Duration.ofSeconds(10)).until(() -> loop.queued() == asks.size());
			release.countDown();
			for (var events : running) {
				results.add(events.get(60, TimeUnit.SECONDS));
			}
		}
		return results;
	}

	/**
	 * {@code delayed} shares the prompt's statistic, not experts: each choice and each
	 * cached request selects after its own first tokens.
	 */
	@ParameterizedTest(name = "delayed={0}")
	@ValueSource(booleans = { false, true })
	void choicesShareOnePrefillAndTheCacheServesTheSecondRequest(boolean selectsLater) {
		AtomicInteger prefills = new AtomicInteger();
		EngineProbe counting = (phase) -> {
			if (phase.equals("prefill")) {
				prefills.incrementAndGet();
			}
		};
		Ask ask = new Ask(selectsLater ? delayed : half, "Jackdaws love my big sphinx of quartz", sampled(14, 11), 3);
		int chunks = (bytes(ask.prompt()).length + PREFILL_CHUNK - 1) / PREFILL_CHUNK;
		PromptCache cache = new PromptCache(64L << 20);
		PromptCache.Key key = new PromptCache.Key(null, "jackdaws");
		try (EngineLoop loop = loop(8, cache, Duration.ofSeconds(30))) {
			List<GenerationEvent> first = events(loop, submission(ask, counting, key, 0)).collectList()
				.block(Duration.ofSeconds(60));
			// the chunks and the end of the prompt phase, once for three choices
			assertThat(prefills.get()).isEqualTo(chunks + 1);
			List<GenerationEvent> second = events(loop, submission(ask, counting, key, 0)).collectList()
				.block(Duration.ofSeconds(60));
			assertThat(prefills.get()).isEqualTo(chunks + 1);
			assertThat(second).filteredOn(GenerationEvent.Started.class::isInstance)
				.allMatch((event) -> ((GenerationEvent.Started) event).cacheHit());
			for (int choice = 0; choice < 3; choice++) {
				assertThat(tokens(first).get(choice)).isEqualTo(alone(ask, choice));
				assertThat(tokens(second).get(choice)).isEqualTo(alone(ask, choice));
			}
			// the selection is timed where it ran: in the first request's prompt, not in
			// the cached one's
			Generator.Timings prefilled = timings(first).get(0);
			assertThat(prefilled.selectionNanos()).isPositive().isLessThanOrEqualTo(prefilled.prefillNanos());
			assertThat(timings(second).values()).allMatch((t) -> t.selectionNanos() == 0);
			Generator.Timings sequential = new Generator(ask.model(), tokenizer)
				.generate(bytes(ask.prompt()), ask.params(), (token, text) -> true)
				.timings();
			assertThat(sequential.selectionNanos()).isPositive().isLessThanOrEqualTo(sequential.prefillNanos());
		}
		cache.invalidateAll();
	}

	/**
	 * Prompts that share a long start: the second stores it as a prefix, the ones after
	 * it run only their own rest, in passes of their own and together, and every request
	 * generates what it generates alone; a failure to store the prefix is one engine
	 * failure of that request.
	 */
	@ParameterizedTest(name = "{0}")
	@ValueSource(strings = { "dense", "topk", "delayed", "native" })
	void promptsThatShareAStartRunOnlyTheirOwnRest(String name) throws Exception {
		CausalLm model = switch (name) {
			case "dense" -> dense;
			case "topk" -> half;
			case "delayed" -> delayed;
			default -> fusedHalf;
		};
		String start = "You are a careful assistant; answer briefly. ";
		List<Ask> asks = List.of(new Ask(model, start + "Why is the sky blue?", greedy(6), 1),
				new Ask(model, start + "What is a river?", sampled(6, 5), 2),
				new Ask(model, start + "Where do rivers end?", greedy(6), 1),
				new Ask(model, start + "When does it snow?", greedy(6), 1),
				new Ask(model, start + "Which bird sings?", sampled(6, 9), 1));
		// the questions share their first two letters ("Wh") too
		int shared = bytes(start).length + 2;
		PromptCache cache = new PromptCache(64L << 20);
		List<List<GenerationEvent>> results = new ArrayList<>();
		try (EngineLoop loop = loop(8, cache, Duration.ofSeconds(30))) {
			for (int i = 0; i < 3; i++) {
				results.add(
						events(loop, submission(asks.get(i), EngineProbe.NONE, prefixKey(asks.get(i)), 0)).collectList()
							.block(Duration.ofSeconds(60)));
			}
			var restored = this.registry.get("griffin.prompt.prefix.tokens").counter();
			assertThat(restored.count()).as("the third prompt's restored start").isEqualTo(shared);
			// two arriving together, each from the prefix
			List<reactor.core.publisher.Mono<List<GenerationEvent>>> together = new ArrayList<>();
			for (int i = 3; i < 5; i++) {
				together.add(
						events(loop, submission(asks.get(i), EngineProbe.NONE, prefixKey(asks.get(i)), 0)).collectList()
							.cache());
				together.get(together.size() - 1).subscribe();
			}
			for (var events : together) {
				results.add(events.block(Duration.ofSeconds(60)));
			}
			assertThat(restored.count()).isEqualTo(3 * shared);
		}
		for (int i = 0; i < asks.size(); i++) {
			Map<Integer, int[]> tokens = tokens(results.get(i));
			for (int choice = 0; choice < asks.get(i).choices(); choice++) {
				assertThat(tokens.get(choice)).as("request %d choice %d", i, choice)
					.isEqualTo(alone(asks.get(i), choice));
			}
		}
		cache.invalidateAll();
	}

	@Test
	void aFailureToStoreAPrefixFailsThatRequestAlone() {
		String start = "You are a careful assistant; answer briefly. ";
		Ask first = new Ask(half, start + "Why is the sky blue?", greedy(4), 1);
		Ask second = new Ask(half, start + "What is a river?", greedy(4), 1);
		AtomicInteger prefixPhases = new AtomicInteger();
		EngineProbe failing = (phase) -> {
			// the first is the lookup, the second the store
			if (phase.equals("prefix") && prefixPhases.incrementAndGet() == 2) {
				throw new IllegalStateException("no memory for the prefix");
			}
		};
		PromptCache cache = new PromptCache(64L << 20);
		try (EngineLoop loop = loop(4, cache, Duration.ofSeconds(30))) {
			events(loop, submission(first, EngineProbe.NONE, prefixKey(first), 0)).collectList()
				.block(Duration.ofSeconds(60));
			assertThatThrownBy(() -> events(loop, submission(second, failing, prefixKey(second), 0)).collectList()
				.block(Duration.ofSeconds(60))).isInstanceOf(EngineFailureException.class);
			// the loop serves the next request
			assertThat(tokens(events(loop, submission(second, EngineProbe.NONE, prefixKey(second), 0)).collectList()
				.block(Duration.ofSeconds(60))).get(0)).isEqualTo(alone(second, 0));
		}
		cache.invalidateAll();
	}

	/** A key whose prompt may share a prefix with the others of the test's model. */
	private static PromptCache.Key prefixKey(Ask ask) {
		return new PromptCache.Key(null, ask.prompt() + "@" + density(ask.model()) + "@" + ask.model().hashCode(),
				PromptCache.prefixBase("tiny-llama", "FLOAT32", null));
	}

	@Test
	void aSamplingFaultEndsItsOwnRequestOnly() {
		AtomicInteger samples = new AtomicInteger();
		EngineProbe faulty = (phase) -> {
			if (phase.equals("sample") && samples.incrementAndGet() == 3) {
				throw new IllegalStateException("logits with nothing to sample");
			}
		};
		Ask healthy = new Ask(dense, "Waltz, bad nymph, for quick jigs vex", greedy(10), 1);
		Ask broken = new Ask(half, "Glib jocks quiz nymph to vex dwarf", greedy(10), 1);
		try (EngineLoop loop = loop(4, null, Duration.ofSeconds(30))) {
			var first = events(loop, submission(healthy, EngineProbe.NONE, null, 0)).collectList().cache();
			var failing = events(loop, submission(broken, faulty, null, 0)).collectList().cache();
			var last = events(loop, submission(healthy, EngineProbe.NONE, null, 0)).collectList().cache();
			first.subscribe();
			failing.subscribe((events) -> {
			}, (error) -> {
			});
			last.subscribe();
			assertThat(tokens(first.block(Duration.ofSeconds(60))).get(0)).isEqualTo(alone(healthy, 0));
			assertThat(tokens(last.block(Duration.ofSeconds(60))).get(0)).isEqualTo(alone(healthy, 0));
			AtomicReference<Throwable> error = new AtomicReference<>();
			failing.onErrorResume((ex) -> {
				error.set(ex);
				return reactor.core.publisher.Mono.empty();
			}).block(Duration.ofSeconds(60));
			assertThat(error.get()).isInstanceOf(EngineFailureException.class);
		}
		assertThat(this.breaker.getMetrics().getNumberOfFailedCalls()).isEqualTo(1);
		assertThat(this.breaker.getMetrics().getNumberOfSuccessfulCalls()).isEqualTo(2);
	}

	@Test
	void aFailedBatchedPassFailsItsRequestsAndCountsOnceForTheBreaker() throws Exception {
		CountDownLatch secondQueued = new CountDownLatch(1);
		AtomicInteger decodes = new AtomicInteger();
		EngineProbe probe = (phase) -> {
			try {
				if (phase.equals("allocate") && !secondQueued.await(30, TimeUnit.SECONDS)) {
					throw new IllegalStateException("the second request was not queued");
				}
			}
			catch (InterruptedException ex) {
				Thread.currentThread().interrupt();
			}
			// the first pass decodes the first request alone, the second both
			if (phase.equals("decode") && decodes.incrementAndGet() == 2) {
				throw new IllegalStateException("injected fault in a batched pass");
			}
		};
		Ask ask = new Ask(dense, "Two", greedy(10), 1);
		List<Throwable> errors = new CopyOnWriteArrayList<>();
		try (EngineLoop loop = loop(4, null, Duration.ofSeconds(30))) {
			var a = events(loop, submission(ask, probe, null, 0)).collectList().onErrorResume((ex) -> {
				errors.add(ex);
				return reactor.core.publisher.Mono.empty();
			}).toFuture();
			var b = events(loop, submission(ask, EngineProbe.NONE, null, 0)).collectList().onErrorResume((ex) -> {
				errors.add(ex);
				return reactor.core.publisher.Mono.empty();
			}).toFuture();
			secondQueued.countDown();
			a.get(60, TimeUnit.SECONDS);
			b.get(60, TimeUnit.SECONDS);
		}
		assertThat(errors).hasSize(2).allMatch(EngineFailureException.class::isInstance);
		assertThat(this.breaker.getMetrics().getNumberOfFailedCalls()).isEqualTo(1);
		assertThat(this.breaker.getMetrics().getNumberOfSuccessfulCalls()).isZero();
	}

	@Test
	void cancelledStalledAndLateRequestsEndAndReturnTheirPermits() throws Exception {
		Ask longAsk = new Ask(dense, "Tell a long story", greedy(200), 1);
		try (EngineLoop loop = loop(4, null, Duration.ofMillis(300))) {
			// a client that leaves after five tokens
			EngineLoop.Submission leaving = submission(longAsk, EngineProbe.NONE, null, 0);
			List<GenerationEvent> seen = events(loop, leaving).filter(GenerationEvent.Token.class::isInstance)
				.take(5)
				.collectList()
				.block(Duration.ofSeconds(60));
			assertThat(seen).hasSize(5);
			await().atMost(Duration.ofSeconds(10)).until(leaving.admission()::isReleased);
			// a client that reads two events, then nothing
			EngineLoop.Submission stalling = submission(longAsk, EngineProbe.NONE, null, 0);
			AtomicReference<Throwable> stalled = new AtomicReference<>();
			events(loop, stalling).subscribe(new BaseSubscriber<>() {
				@Override
				protected void hookOnSubscribe(Subscription subscription) {
					request(2);
				}

				@Override
				protected void hookOnError(Throwable error) {
					stalled.set(error);
				}
			});
			await().atMost(Duration.ofSeconds(10)).until(() -> stalled.get() != null);
			assertThat(stalled.get()).isInstanceOf(StreamStalledException.class);
			await().atMost(Duration.ofSeconds(10)).until(stalling.admission()::isReleased);
			// a request past its deadline
			EngineLoop.Submission late = submission(longAsk, EngineProbe.NONE, null, System.nanoTime() - 1);
			AtomicReference<Throwable> timedOut = new AtomicReference<>();
			events(loop, late).subscribe((event) -> {
			}, timedOut::set);
			await().atMost(Duration.ofSeconds(10)).until(() -> timedOut.get() != null);
			assertThat(timedOut.get()).isInstanceOf(GenerationTimeoutException.class);
			await().atMost(Duration.ofSeconds(10)).until(late.admission()::isReleased);
			// and the loop still serves
			Ask next = new Ask(half, "Still here", greedy(6), 1);
			assertThat(tokens(events(loop, submission(next, EngineProbe.NONE, null, 0)).collectList()
				.block(Duration.ofSeconds(60))).get(0)).isEqualTo(alone(next, 0));
		}
		// none of these is the engine's fault
		assertThat(this.breaker.getMetrics().getNumberOfFailedCalls()).isZero();
		assertThat(this.bulkhead.getMetrics().getAvailableConcurrentCalls()).isEqualTo(1000);
	}

	@Test
	void nativeMemoryIsFlatOverThousandsOfBatchedSteps() throws Exception {
		String[] prompts = { "one", "a longer prompt that takes a few chunks", "x", "Sphinx of black quartz" };
		CausalLm[] models = { dense, half, quarter };
		try (EngineLoop loop = loop(4, null, Duration.ofSeconds(30))) {
			// warm: the first variants' buffers
			EngineLoop.Submission warm = submission(new Ask(half, "warm", greedy(4), 2), EngineProbe.NONE, null, 0);
			events(loop, warm).blockLast();
			// a request's sequences are freed when the loop retires it, after its last
			// event
			await().atMost(Duration.ofSeconds(10)).until(warm.admission()::isReleased);
			int before = NativeMemoryIT.liveArrays(manager);
			List<EngineLoop.Submission> submissions = new ArrayList<>();
			List<reactor.core.publisher.Mono<List<GenerationEvent>>> all = new ArrayList<>();
			// about 8,700 tokens in batches of up to 4: over 2,000 steps
			for (int i = 0; i < 64; i++) {
				Ask ask = new Ask(models[i % 3], prompts[i % 4], greedy(110 + (i * 7) % 50), 1 + (i % 5 == 0 ? 1 : 0));
				submissions.add(submission(ask, EngineProbe.NONE, null, 0));
				var events = events(loop, submissions.get(i)).collectList().cache();
				events.subscribe();
				all.add(events);
			}
			for (var events : all) {
				assertThat(events.block(Duration.ofSeconds(120))).isNotEmpty();
			}
			await().atMost(Duration.ofSeconds(10))
				.until(() -> submissions.stream().allMatch((s) -> s.admission().isReleased()));
			assertThat(this.registry.get("griffin.engine.batch.size").summary().count()).isGreaterThan(2000);
			assertThat(NativeMemoryIT.liveArrays(manager)).isEqualTo(before);
		}
	}

}

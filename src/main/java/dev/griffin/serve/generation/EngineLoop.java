package dev.griffin.serve.generation;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntSupplier;
import java.util.function.Supplier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.FluxSink;

import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.KvArena;
import dev.griffin.serve.observability.GenerationMetrics;
import dev.griffin.serve.tokenizer.IncrementalDetokenizer;
import dev.griffin.serve.tokenizer.Tokenizer;

/**
 * The engine: one thread that owns every running sequence of one model and advances them
 * together. Each step it
 * <ol>
 * <li>hands each request's pending events to its client as far as the client reads, and
 * retires requests that finished, were cancelled, stalled, failed or ran out of
 * time;</li>
 * <li>admits waiting work while fewer than {@code maxSequences} sequences run (the
 * remaining choices of running requests first, then new requests, fairly across
 * tenants);</li>
 * <li>runs at most one prefill chunk, so a long prompt delays running streams by one
 * chunk per step, not by its whole length;</li>
 * <li>runs one decode pass over every running sequence whose client keeps up
 * ({@link InferenceSession#decodeBatch}: one read of the weights for all of them; a
 * single sequence takes the batch-1 path, GRIFFIN's gathered experts), then samples each
 * sequence's token on its own.</li>
 * </ol>
 * A request's n choices are sequences that start from its prompt's one prefill (its KV
 * cache and its experts, through the prompt cache's entry or a private one). A fault of
 * one sequence (sampling logits with nothing to sample) ends its request only; a fault in
 * a batched pass fails the requests in it and counts once for the circuit breaker. Other
 * model work ({@link #execute}) runs on this thread between steps. Events are handed to a
 * client only on demand: a request whose client stops reading is left out of decode
 * passes, and cancelled once it has read nothing for the stall timeout.
 */
public final class EngineLoop implements AutoCloseable {

	private static final Logger logger = LoggerFactory.getLogger(EngineLoop.class);

	/** How long an idle loop sleeps before it looks again (a wake-up ends it sooner). */
	private static final long IDLE_NANOS = 50_000_000;

	/** The KV arena's default tokens per sequence the loop runs ({@link #arenaFor}). */
	static final int ARENA_TOKENS_PER_SEQUENCE = 2048;

	/**
	 * Prompt tokens a prefill pass is charged at least against a step's budget: a short
	 * pass costs about what a pass of this many tokens does (the per-operation work of a
	 * pass through every layer), so one step runs at most budget / 32 passes.
	 */
	static final int PASS_TOKENS = 32;

	/**
	 * Prompt tokens a step runs at most while other sequences decode, unless configured:
	 * their next tokens wait for the step's prompt work, so a long prompt runs in smaller
	 * chunks then.
	 */
	static final int DECODING_BUDGET = 128;

	/**
	 * Prompt tokens a pass runs at most when the prompt is scored
	 * ({@link GenerationJob#scorePrompt}): the pass returns the logits of each token, 64
	 * vocabularies (39 MB for Qwen2.5's 151,936 tokens).
	 */
	static final int SCORED_CHUNK = 64;

	/** How often a loop whose every stream waits for its client looks again. */
	private static final long BLOCKED_NANOS = 1_000_000;

	private final int maxSequences;

	private final int arenaTokensPerSequence;

	private final int prefillChunk;

	private final int decodingBudget;

	private final PromptCache cache;

	private final GenerationMetrics metrics;

	private final long stallNanos;

	/** Requests on their way to the loop (see {@link #promptHold}). */
	private final IntSupplier preparing;

	private final long gatherNanos;

	/** How long the loop holds its prompts' pass from now; 0: not holding. */
	private long holdNanos;

	private final FairQueue<Object> waiting = new FairQueue<>();

	/** Admitted requests, in admission order; the loop thread's alone. */
	private final List<Request> running = new ArrayList<>();

	private final Thread thread;

	/**
	 * Where running sequences keep their KV caches so that batched steps attend in a few
	 * operations per layer: made for the first model the loop runs (when it runs more
	 * than one sequence at a time); the loop thread's.
	 */
	private KvArena arena;

	private volatile boolean closed;

	/**
	 * @param maxSequences sequences decoded together at most
	 * @param prefillChunk prompt tokens one step runs at most
	 * @param cache the prompt cache, or null
	 * @param stallTimeout how long a stream may read nothing before it is cancelled
	 */
	public EngineLoop(int maxSequences, int prefillChunk, PromptCache cache, GenerationMetrics metrics,
			Duration stallTimeout) {
		this(maxSequences, ARENA_TOKENS_PER_SEQUENCE, prefillChunk, DECODING_BUDGET, cache, metrics, stallTimeout,
				() -> 0, Duration.ZERO);
	}

	/**
	 * @param arenaTokensPerSequence the KV arena's tokens per sequence
	 * ({@link #arenaFor}; 0: every sequence keeps a cache of its own)
	 * @param decodingBudget prompt tokens one step runs at most while other sequences
	 * decode
	 * @param preparing requests on their way to the loop: arrived or admitted, not yet
	 * submitted ({@link InferenceScheduler#preparing()})
	 * @param promptGather how long a loop with no sequence decoding holds a new prompt's
	 * pass while {@code preparing} is positive, counted from the oldest prompt's
	 * submission, so that requests arriving together share a pass (zero: never)
	 */
	public EngineLoop(int maxSequences, int arenaTokensPerSequence, int prefillChunk, int decodingBudget,
			PromptCache cache, GenerationMetrics metrics, Duration stallTimeout, IntSupplier preparing,
			Duration promptGather) {
		if (maxSequences < 1 || prefillChunk < 1 || decodingBudget < 1 || arenaTokensPerSequence < 0) {
			throw new IllegalArgumentException(
					"at least one sequence, one prompt token per step and no negative arena are required, "
							+ "got %d, %d (%d while decoding) and %d".formatted(maxSequences, prefillChunk,
									decodingBudget, arenaTokensPerSequence));
		}
		this.maxSequences = maxSequences;
		this.arenaTokensPerSequence = arenaTokensPerSequence;
		this.prefillChunk = prefillChunk;
		this.decodingBudget = decodingBudget;
		this.cache = cache;
		this.metrics = metrics;
		this.stallNanos = stallTimeout.toNanos();
		this.preparing = preparing;
		this.gatherNanos = promptGather.toNanos();
		this.thread = new Thread(this::loop, "engine");
		this.thread.setDaemon(true);
		this.thread.start();
	}

	/**
	 * One request's generation as the loop runs it.
	 *
	 * @param job what to generate
	 * @param model the model, or a GRIFFIN variant of it
	 * @param tokenizer the model's tokenizer
	 * @param probe called before every forward pass (fault injection)
	 * @param cacheKey the prompt's key in the prompt cache, or null to bypass it
	 * @param deadlineNanos {@link System#nanoTime()} after which the request fails
	 * @param admission the request's permits and breaker call, already claimed
	 */
	public record Submission(GenerationJob job, CausalLm model, Tokenizer tokenizer, EngineProbe probe,
			PromptCache.Key cacheKey, long deadlineNanos, Admission admission) {

	}

	/**
	 * Queues a claimed request; its events go to {@code sink}, and setting
	 * {@code cancelled} (the client left) ends it within a step.
	 */
	public void submit(Submission submission, FluxSink<GenerationEvent> sink, AtomicBoolean cancelled) {
		this.metrics.waiting(1);
		// queued before the callbacks, whose registration may call them at once: a loop
		// woken by the demand finds the request (a loop holding a prompt for requests
		// being prepared, this one among them, would otherwise start the pass without it)
		this.waiting.put(submission.admission().tenant(), new Request(submission, sink, cancelled));
		sink.onRequest((n) -> wakeUp());
		// registered after a cancellation, it runs at once
		sink.onDispose(() -> {
			cancelled.set(true);
			wakeUp();
		});
		wakeUp();
	}

	/** Runs other model work on the loop's thread, between two steps. */
	public void execute(String tenant, Runnable work) {
		this.waiting.put(tenant, work);
		wakeUp();
	}

	/** Requests and tasks waiting for the loop. */
	public int queued() {
		return this.waiting.size();
	}

	/** Makes the loop look at its work now. */
	private void wakeUp() {
		LockSupport.unpark(this.thread);
	}

	private void loop() {
		while (!this.closed) {
			try {
				if (!step()) {
					LockSupport
						.parkNanos((this.holdNanos > 0) ? this.holdNanos : anyBlocked() ? BLOCKED_NANOS : IDLE_NANOS);
				}
			}
			catch (Throwable ex) {
				// a defect of the loop itself: fail what runs rather than spin on it
				logger.error("engine step failed outside a forward pass", ex);
				for (Request request : this.running) {
					request.fail(new EngineFailureException("the engine failed: " + ex, ex), false);
					request.close();
				}
				this.running.clear();
			}
		}
		for (Request request : this.running) {
			request.fail(new EngineFailureException("the server is shutting down", null), false);
			request.close();
		}
		this.running.clear();
	}

	/** One step; false when it had nothing to compute. */
	private boolean step() {
		retire();
		admit();
		this.holdNanos = promptHold(System.nanoTime());
		boolean worked = (this.holdNanos == 0) && prefill();
		worked |= decode();
		return worked;
	}

	/**
	 * How much longer to hold the prompts' pass: while no sequence decodes (a running
	 * step is itself the time in which arrivals gather) and other requests are still on
	 * their way (their bodies read, or being prepared), up to the gathering time from the
	 * oldest prompt's submission. Requests sent together reach the loop a few
	 * milliseconds apart, after their preparation; without the hold the first starts a
	 * pass alone and the rest wait for it and a decode step before their own.
	 */
	private long promptHold(long now) {
		if (this.gatherNanos == 0 || this.preparing.getAsInt() == 0) {
			return 0;
		}
		long oldest = Long.MAX_VALUE;
		for (Request request : this.running) {
			if (!request.prefilling()) {
				return 0;
			}
			oldest = Math.min(oldest, request.submittedNanos);
		}
		return (oldest == Long.MAX_VALUE) ? 0 : Math.max(0, oldest + this.gatherNanos - now);
	}

	/**
	 * Whether a running request decodes this step: past its prompt, its client reading.
	 */
	private boolean decoding() {
		for (Request request : this.running) {
			if (request.failure == null && !request.prefilling() && request.pending.isEmpty()) {
				return true;
			}
		}
		return false;
	}

	private boolean anyBlocked() {
		for (Request request : this.running) {
			if (!request.pending.isEmpty()) {
				return true;
			}
		}
		return false;
	}

	private void retire() {
		long now = System.nanoTime();
		for (Iterator<Request> it = this.running.iterator(); it.hasNext();) {
			Request request = it.next();
			if (request.update(now)) {
				it.remove();
				request.close();
			}
		}
	}

	private int sequences() {
		int count = 0;
		for (Request request : this.running) {
			count += request.activeSequences();
		}
		return count;
	}

	private void admit() {
		int free = this.maxSequences - sequences();
		// the other choices of running requests, whose prompt is processed
		for (Request request : this.running) {
			while (free > 0 && request.canStartChoice()) {
				request.startChoice();
				free--;
			}
		}
		while (free > 0) {
			Object next = this.waiting.poll();
			if (next == null) {
				return;
			}
			if (next instanceof Runnable task) {
				task.run();
				continue;
			}
			Request request = (Request) next;
			this.metrics.waiting(-1);
			this.metrics.queued(System.nanoTime() - request.submission.admission().admittedNanos());
			this.metrics.running(1);
			request.admitted = true;
			this.running.add(request);
			if (request.update(System.nanoTime())) {
				// it was cancelled or timed out while it waited
				this.running.remove(request);
				request.close();
				continue;
			}
			request.startChoice();
			free--;
		}
	}

	/**
	 * Runs prompt chunks of the requests still processing their prompt, oldest first,
	 * within one chunk's budget of tokens per step (a smaller one while other sequences
	 * decode): a long prompt takes the whole budget, several short ones share it, so that
	 * a burst of short prompts reaches its first tokens in one step instead of one step
	 * each, and running streams still wait for at most about one chunk's work. The
	 * prompts whose rest fits the budget run together in one pass
	 * ({@link InferenceSession#prefillBatch}: dense and GRIFFIN sequences whose model
	 * prefills in the native form), which reads the weights once for all of them; the
	 * others each take a pass of their own, charged at least {@link #PASS_TOKENS}, as is
	 * the shared pass.
	 */
	private boolean prefill() {
		int budget = decoding() ? Math.min(this.prefillChunk, this.decodingBudget) : this.prefillChunk;
		boolean worked = false;
		List<Sequence> together = new ArrayList<>();
		for (Request request : this.running) {
			if (budget <= 0) {
				break;
			}
			if (!request.prefilling()) {
				continue;
			}
			worked = true;
			Sequence first = request.choices[0];
			int left = first.promptLeft();
			boolean shares = left <= budget && request.prefillsTogether();
			if (!request.prefilling()) {
				continue; // it failed
			}
			if (shares) {
				budget -= together.isEmpty() ? Math.max(PASS_TOKENS, left) : left;
				together.add(first);
			}
			else {
				budget -= Math.max(PASS_TOKENS, ranAlone(request, budget));
			}
		}
		if (together.size() == 1) {
			ranAlone(together.get(0).request, together.get(0).promptLeft());
		}
		else if (!together.isEmpty()) {
			prefillTogether(together);
		}
		return worked;
	}

	/** A prompt chunk of one request in a pass of its own; the tokens it ran. */
	private int ranAlone(Request request, int budget) {
		int ran = request.prefillChunk(budget);
		if (ran > 0) {
			this.metrics.promptPass(1);
		}
		return ran;
	}

	/**
	 * The rest of each sequence's prompt in one pass. A failure of the pass is one engine
	 * failure for the breaker, however many requests it ends.
	 */
	private void prefillTogether(List<Sequence> sequences) {
		List<InferenceSession> sessions = new ArrayList<>(sequences.size());
		List<int[]> chunks = new ArrayList<>(sequences.size());
		for (Sequence sequence : sequences) {
			sessions.add(sequence.session);
			chunks.add(sequence.promptRest());
		}
		float[][] logits;
		try {
			logits = engine(sequences.get(0).request.submission.probe(), "prefill",
					() -> InferenceSession.prefillBatch(sessions, chunks));
		}
		catch (RuntimeException ex) {
			logger.error("a prompt pass of {} sequences failed: {}", sequences.size(), ex.toString(), ex);
			boolean counted = false;
			for (Sequence sequence : sequences) {
				if (sequence.request.failure == null) {
					sequence.request.fail(ex, !counted);
					counted = true;
				}
			}
			return;
		}
		this.metrics.promptPass(sequences.size());
		for (int i = 0; i < sequences.size(); i++) {
			sequences.get(i).request.chunkDone(chunks.get(i).length, logits[i]);
		}
	}

	/** One decode pass over every sequence that has a token to run. */
	private boolean decode() {
		List<Sequence> batch = new ArrayList<>();
		for (Request request : this.running) {
			if (request.failure == null && request.pending.isEmpty()) {
				for (Sequence sequence : request.choices) {
					if (sequence.decodable()) {
						batch.add(sequence);
					}
				}
			}
		}
		if (batch.isEmpty()) {
			return false;
		}
		int b = batch.size();
		List<InferenceSession> sessions = new ArrayList<>(b);
		int[] tokens = new int[b];
		for (int i = 0; i < b; i++) {
			sessions.add(batch.get(i).session);
			tokens[i] = batch.get(i).decoding.lastToken();
		}
		long start = System.nanoTime();
		float[][] logits;
		try {
			logits = engine(batch.get(0).request.submission.probe(), "decode",
					() -> (b == 1) ? new float[][] { sessions.get(0).decode(tokens[0]) }
							: InferenceSession.decodeBatch(sessions, tokens));
		}
		catch (RuntimeException ex) {
			// one failure of the engine for the breaker, however many requests it ends
			logger.error("a decode pass of {} sequences failed: {}", b, ex.toString(), ex);
			boolean counted = false;
			for (Sequence sequence : batch) {
				if (sequence.request.failure == null) {
					sequence.request.fail(ex, !counted);
					counted = true;
				}
			}
			return true;
		}
		long nanos = System.nanoTime() - start;
		this.metrics.step(b, nanos);
		for (int i = 0; i < b; i++) {
			Sequence sequence = batch.get(i);
			sequence.decodeNanos += nanos;
			sequence.decodeSteps++;
			sequence.sample(logits[i]);
		}
		return true;
	}

	/**
	 * Runs engine work; anything it throws is an engine failure (what the circuit breaker
	 * counts), never the request's fault: requests are validated before they reach the
	 * engine.
	 */
	static <T> T engine(EngineProbe probe, String phase, Supplier<T> work) {
		try {
			probe.beforeForward(phase);
			return work.get();
		}
		catch (EngineFailureException | GenerationTimeoutException ex) {
			// an inner phase's failure, or the deadline passing during prefill
			throw ex;
		}
		catch (RuntimeException ex) {
			throw new EngineFailureException("the engine failed during " + phase + ": " + ex, ex);
		}
	}

	/**
	 * The arena for sessions of {@code model}, made on first use: room for every sequence
	 * the loop runs at its full context, up to the configured tokens each (a longer
	 * sequence takes a range if one is free, else keeps its own cache). Null when the
	 * loop runs one sequence at a time or has no arena, or for a model over other
	 * weights.
	 */
	private KvArena arenaFor(CausalLm model) {
		if (this.arena == null) {
			int tokens = KvArena.tokensFor(model.config(), this.maxSequences, this.arenaTokensPerSequence);
			if (tokens == 0) {
				return null;
			}
			this.arena = new KvArena(model, tokens);
			logger.info("KV arena: {} tokens of {} ({} MiB, committed as sequences write it) for {} sequences",
					this.arena.tokens(), model.options().cacheDataType(), this.arena.bytes() >> 20, this.maxSequences);
		}
		return this.arena.serves(model) ? this.arena : null;
	}

	@Override
	public void close() {
		this.closed = true;
		wakeUp();
		try {
			this.thread.join(Duration.ofSeconds(30).toMillis());
		}
		catch (InterruptedException ex) {
			Thread.currentThread().interrupt();
		}
		if (this.arena != null && !this.thread.isAlive()) {
			this.arena.close();
		}
		for (Object next = this.waiting.poll(); next != null; next = this.waiting.poll()) {
			if (next instanceof Request request) {
				request.fail(new EngineFailureException("the server is shutting down", null), false);
				request.close();
			}
		}
	}

	/** One admitted request: its choices, its stream and its outcome. */
	private final class Request {

		private final Submission submission;

		private final FluxSink<GenerationEvent> sink;

		private final AtomicBoolean cancelled;

		/** Events the client has not asked for yet. */
		private final ArrayDeque<GenerationEvent> pending = new ArrayDeque<>();

		private final long submittedNanos = System.nanoTime();

		private final Sequence[] choices;

		private final boolean useCache;

		private long blockedSince;

		private int started;

		private int finished;

		/**
		 * Where choice 0's prefill stands: the next prompt token to run, -1 when done.
		 */
		private int promptOffset = -1;

		/**
		 * Where choice 0's prefill stops once to store the prompt's prefix up to there
		 * ({@link PromptCache#startFromPrefix}); 0 when it does not.
		 */
		private int promptStop;

		private long lastTokenNanos;

		private boolean firstToken = true;

		private Throwable failure;

		private boolean ended;

		/** Whether the loop took it from the queue (it counts as running). */
		private boolean admitted;

		/**
		 * The prompt's scored tokens so far ({@link GenerationJob#scorePrompt}), or null.
		 */
		private final List<GeneratedToken> promptScores;

		/** The scored prompt tokens' text, token by token. */
		private final IncrementalDetokenizer promptText;

		private float[] scoreScratch;

		Request(Submission submission, FluxSink<GenerationEvent> sink, AtomicBoolean cancelled) {
			this.submission = submission;
			this.sink = sink;
			this.cancelled = cancelled;
			this.useCache = submission.cacheKey() != null && EngineLoop.this.cache != null;
			GenerationJob job = submission.job();
			this.promptScores = job.scorePrompt() ? new ArrayList<>() : null;
			this.promptText = job.scorePrompt() ? new IncrementalDetokenizer(submission.tokenizer(), false) : null;
			this.choices = new Sequence[job.choices()];
			for (int i = 0; i < this.choices.length; i++) {
				SamplingParams params = (i == 0 || job.params().seed() == null) ? job.params()
						: job.params().withSeed(job.params().seed() + i);
				this.choices[i] = new Sequence(this, i, params);
			}
		}

		int activeSequences() {
			int count = 0;
			for (Sequence sequence : this.choices) {
				if (sequence.session != null) {
					count++;
				}
			}
			return count;
		}

		boolean prefilling() {
			return this.failure == null && this.promptOffset >= 0;
		}

		/** Whether another choice can start now: the prompt is processed for choice 0. */
		boolean canStartChoice() {
			return this.failure == null && this.started > 0 && this.started < this.choices.length
					&& this.choices[0].processed != null;
		}

		void startChoice() {
			Sequence sequence = this.choices[this.started++];
			try {
				sequence.start();
			}
			catch (RuntimeException ex) {
				fail(ex, true);
			}
		}

		/** Runs at most {@code budget} prompt tokens; returns how many it ran. */
		int prefillChunk(int budget) {
			try {
				return this.choices[0].prefillChunk(budget);
			}
			catch (RuntimeException ex) {
				fail(ex, true);
				return 0;
			}
		}

		/**
		 * Whether the rest of the prompt can run in a pass with other prompts: not when
		 * it is scored, whose pass returns every token's logits.
		 */
		boolean prefillsTogether() {
			if (this.promptScores != null) {
				return false;
			}
			try {
				return this.choices[0].session.prefillsTogether();
			}
			catch (RuntimeException ex) {
				fail(ex, true);
				return false;
			}
		}

		/**
		 * Scores the prompt tokens that a chunk's logits predict: rows[r] follows the
		 * prompt's token from + r, so it scores token from + r + 1. The first token,
		 * which nothing predicts, has no log-probability.
		 */
		void score(int from, float[][] rows) {
			int[] prompt = this.submission.job().prompt();
			Tokenizer tokenizer = this.submission.tokenizer();
			if (from == 0) {
				this.promptScores
					.add(new GeneratedToken(prompt[0], this.promptText.accept(prompt[0]), Float.NaN, List.of()));
			}
			for (int r = 0; r < rows.length && from + r + 1 < prompt.length; r++) {
				int token = prompt[from + r + 1];
				if (this.scoreScratch == null || this.scoreScratch.length != rows[r].length) {
					this.scoreScratch = new float[rows[r].length];
				}
				this.promptScores.add(Decoding.scored(token, this.promptText.accept(token), rows[r],
						this.submission.job().topLogprobs(), tokenizer, this.scoreScratch));
			}
		}

		/**
		 * The prompt's scored tokens, the bytes of an unfinished character at its end
		 * given to its last token.
		 */
		GenerationEvent.PromptScored promptScored() {
			String rest = this.promptText.flush();
			int last = this.promptScores.size() - 1;
			if (!rest.isEmpty()) {
				GeneratedToken end = this.promptScores.get(last);
				this.promptScores.set(last,
						new GeneratedToken(end.id(), end.text() + rest, end.logprob(), end.topLogprobs()));
			}
			return new GenerationEvent.PromptScored(this.promptScores);
		}

		/** Takes the logits after a chunk of the prompt that ran in a shared pass. */
		void chunkDone(int ran, float[] logits) {
			try {
				this.choices[0].chunkDone(ran, logits);
			}
			catch (RuntimeException ex) {
				fail(ex, true);
			}
		}

		void emit(GenerationEvent event) {
			this.pending.add(event);
			flush(System.nanoTime());
		}

		/** Hands pending events over while the client asks for them. */
		private void flush(long now) {
			boolean wasBlocked = !this.pending.isEmpty();
			while (!this.pending.isEmpty() && this.sink.requestedFromDownstream() > 0 && !this.cancelled.get()) {
				this.sink.next(this.pending.poll());
			}
			if (this.pending.isEmpty()) {
				this.blockedSince = 0;
			}
			else if (this.blockedSince == 0 || !wasBlocked) {
				this.blockedSince = now;
			}
		}

		/**
		 * Moves the request along outside the forward passes: flushes events, notices a
		 * cancelled, stalled or late request.
		 * @return true when the request has ended and leaves the loop
		 */
		boolean update(long now) {
			if (this.failure != null) {
				return true;
			}
			flush(now);
			if (this.cancelled.get()) {
				cancelAll();
				EngineLoop.this.metrics.cancelled();
				logger.info("generation cancelled by the client after {} tokens", generated());
				return true;
			}
			if (this.blockedSince != 0 && now - this.blockedSince > EngineLoop.this.stallNanos) {
				cancelAll();
				EngineLoop.this.metrics.cancelled();
				logger.warn("stream cancelled: its client read nothing for {} ({} tokens generated)",
						Duration.ofNanos(EngineLoop.this.stallNanos), generated());
				fail(new StreamStalledException(Duration.ofNanos(EngineLoop.this.stallNanos)), false);
				return true;
			}
			if (this.finished == this.choices.length && this.pending.isEmpty()) {
				this.submission.admission().recordSuccess(now - this.submission.admission().admittedNanos());
				this.ended = true;
				this.sink.complete();
				return true;
			}
			if (this.submission.deadlineNanos() != 0 && now - this.submission.deadlineNanos() > 0) {
				cancelAll();
				fail(new GenerationTimeoutException(), false);
				return true;
			}
			return false;
		}

		private int generated() {
			int count = 0;
			for (Sequence sequence : this.choices) {
				count += sequence.decoding.count();
			}
			return count;
		}

		private void cancelAll() {
			for (Sequence sequence : this.choices) {
				sequence.decoding.cancel();
			}
		}

		/**
		 * Ends the request with an error (once).
		 * @param countForBreaker whether an engine failure counts for the breaker (a
		 * batch's failure counts once)
		 */
		void fail(Throwable ex, boolean countForBreaker) {
			if (this.failure != null || this.ended) {
				return;
			}
			this.failure = ex;
			long nanos = System.nanoTime() - this.submission.admission().admittedNanos();
			if (ex instanceof EngineFailureException || ex instanceof Error) {
				EngineLoop.this.metrics.failed();
				if (countForBreaker) {
					this.submission.admission().recordEngineFailure(nanos, ex);
				}
				logger.error("generation failed in the engine: {}", ex.toString(), ex);
			}
			else if (!(ex instanceof IllegalArgumentException || ex instanceof GenerationTimeoutException
					|| ex instanceof StreamStalledException)) {
				// a defect outside the engine: this request fails, the breaker does not
				// count it
				EngineLoop.this.metrics.failed();
				logger.error("generation failed: {}", ex.toString(), ex);
			}
			this.sink.error(ex);
		}

		/** Frees the sequences' memory and returns the permits; the loop's last word. */
		void close() {
			for (Sequence sequence : this.choices) {
				sequence.close();
			}
			if (!this.ended && this.failure == null) {
				// cancelled: the client is gone
				this.sink.complete();
			}
			this.ended = true;
			EngineLoop.this.metrics.running(this.admitted ? -1 : 0);
			if (!this.admitted) {
				EngineLoop.this.metrics.waiting(-1);
			}
			this.submission.admission().releaseClaimed();
		}

	}

	/** One choice of a request: a sequence with its own session and sampling. */
	private final class Sequence {

		private final Request request;

		private final int index;

		private final SamplingParams params;

		private final Decoding decoding;

		private InferenceSession session;

		private PromptCache.Processed processed;

		private long startNanos;

		private long prefillNanos;

		/** Prompt tokens restored from a cached prefix instead of run. */
		private int restoredTokens;

		private long selectionNanos;

		private long firstTokenNanos;

		private long decodeNanos;

		private int decodeSteps;

		Sequence(Request request, int index, SamplingParams params) {
			this.request = request;
			this.index = index;
			this.params = params;
			GenerationJob job = request.submission.job();
			this.decoding = new Decoding(params, job.topLogprobs(), request.submission.model().config(),
					request.submission.tokenizer(), job.prompt());
		}

		private Submission submission() {
			return this.request.submission;
		}

		/**
		 * Allocates the session and starts the prompt: from the cache, a sibling or a
		 * prefill.
		 */
		void start() {
			Submission s = submission();
			int[] prompt = s.job().prompt();
			Generator.checkContextLength(prompt.length, this.params.maxNewTokens(),
					s.model().config().maxPositionEmbeddings());
			this.startNanos = System.nanoTime();
			long seed = (this.params.seed() != null) ? this.params.seed() : System.nanoTime();
			this.session = engine(s.probe(), "allocate", () -> new InferenceSession(s.model(),
					prompt.length + this.params.maxNewTokens(), seed, arenaFor(s.model())));
			if (this.index > 0) {
				// the prompt's one prefill, shared with choice 0
				PromptCache.Processed first = this.request.choices[0].processed;
				promptProcessed(engine(s.probe(), "prompt", () -> PromptCache.share(first, this.session)));
				return;
			}
			if (this.request.useCache) {
				PromptCache.Processed hit = engine(s.probe(), "prompt",
						() -> EngineLoop.this.cache.restore(s.cacheKey(), this.session, prompt));
				if (hit != null) {
					promptProcessed(hit);
					return;
				}
				PromptCache.PrefixStart start = engine(s.probe(), "prefix",
						() -> EngineLoop.this.cache.startFromPrefix(s.cacheKey(), this.session, prompt));
				this.restoredTokens = start.restored();
				EngineLoop.this.metrics.prefixRestored(start.restored());
				this.request.promptOffset = start.restored();
				this.request.promptStop = start.storeAt();
				return;
			}
			this.request.promptOffset = 0;
		}

		/**
		 * Where the prompt's run goes up to now: its end, or where a prefix is stored.
		 */
		private int promptEnd() {
			int stop = this.request.promptStop;
			return (stop > this.request.promptOffset) ? stop : submission().job().prompt().length;
		}

		/**
		 * Runs the prompt's next chunk of at most {@code budget} tokens; after the last,
		 * ends the prompt phase. Returns the chunk's size.
		 */
		int prefillChunk(int budget) {
			Submission s = submission();
			int[] prompt = s.job().prompt();
			int from = this.request.promptOffset;
			int size = Math.min(budget, EngineLoop.this.prefillChunk);
			if (this.request.promptScores != null) {
				size = Math.min(size, SCORED_CHUNK);
			}
			int[] chunk = Arrays.copyOfRange(prompt, from, Math.min(promptEnd(), from + size));
			float[] logits;
			if (this.request.promptScores != null) {
				float[][] rows = engine(s.probe(), "prefill", () -> this.session.prefillAllLogits(chunk));
				this.request.score(from, rows);
				logits = rows[rows.length - 1];
			}
			else {
				int pass = size;
				logits = engine(s.probe(), "prefill", () -> this.session.prefill(chunk, pass));
			}
			chunkDone(chunk.length, logits);
			return chunk.length;
		}

		/** Prompt tokens not yet run. */
		int promptLeft() {
			return promptEnd() - this.request.promptOffset;
		}

		/** The prompt's tokens not yet run. */
		int[] promptRest() {
			int[] prompt = submission().job().prompt();
			return Arrays.copyOfRange(prompt, this.request.promptOffset, promptEnd());
		}

		/**
		 * Moves past a chunk of {@code ran} prompt tokens, with the logits after its
		 * last; after the prompt's last chunk, ends the prompt phase.
		 */
		void chunkDone(int ran, float[] logits) {
			Submission s = submission();
			int[] prompt = s.job().prompt();
			this.request.promptOffset += ran;
			if (this.request.promptOffset == this.request.promptStop) {
				this.request.promptStop = 0;
				int[] prefix = Arrays.copyOf(prompt, this.request.promptOffset);
				engine(s.probe(), "prefix", () -> EngineLoop.this.cache.storePrefix(s.cacheKey(), this.session, prefix,
						s.model().manager()));
			}
			if (this.request.promptOffset < prompt.length) {
				return;
			}
			this.request.promptOffset = -1;
			promptProcessed(engine(s.probe(), "prefill", () -> {
				long selectionStart = System.nanoTime();
				this.session.finishPrompt();
				this.selectionNanos = System.nanoTime() - selectionStart;
				if (this.request.useCache) {
					return EngineLoop.this.cache.store(s.cacheKey(), this.session, prompt, logits, s.model().manager());
				}
				if (this.request.choices.length > 1) {
					// the other choices start from a private copy of the prompt's state
					return PromptCache.hold(this.session, prompt, logits, s.model().manager());
				}
				return new PromptCache.Processed(logits, false, null);
			}));
		}

		private void promptProcessed(PromptCache.Processed processed) {
			this.processed = processed;
			this.prefillNanos = System.nanoTime() - this.startNanos;
			if (this.index == 0 && this.request.promptScores != null) {
				this.request.emit(this.request.promptScored());
			}
			this.request.emit(new GenerationEvent.Started(this.index, processed.hit()));
			sample(processed.lastLogits());
		}

		/** Whether this sequence has a sampled token waiting for a decode pass. */
		boolean decodable() {
			return this.session != null && this.processed != null && !this.decoding.finished();
		}

		/**
		 * Samples the next token from {@code logits} and emits it; a fault here (logits
		 * with nothing to sample) ends this request, not the batch.
		 */
		void sample(float[] logits) {
			GeneratedToken token;
			try {
				token = engine(submission().probe(), "sample", () -> this.decoding.next(logits));
			}
			catch (RuntimeException ex) {
				this.request.fail(ex, true);
				return;
			}
			long now = System.nanoTime();
			if (this.firstTokenNanos == 0) {
				this.firstTokenNanos = now - this.startNanos;
			}
			if (token != null && token.isToken()) {
				if (this.request.firstToken) {
					EngineLoop.this.metrics.firstToken(now - submission().admission().admittedNanos());
					this.request.firstToken = false;
				}
				else {
					EngineLoop.this.metrics.interToken(now - this.request.lastTokenNanos);
				}
				this.request.lastTokenNanos = now;
			}
			if (token != null) {
				this.request.emit(new GenerationEvent.Token(this.index, token));
			}
			if (this.decoding.finished()) {
				finish();
			}
		}

		private void finish() {
			Submission s = submission();
			Generator.Result result = this.decoding.result(s.job().prompt().length, this.processed.hit(),
					new Generator.Timings(this.prefillNanos, this.selectionNanos, this.firstTokenNanos,
							this.decodeNanos, this.decodeSteps));
			logger.info(
					"choice {} of a request: {} prompt tokens ({} from a cached prefix), {} generated, finish {}, "
							+ "cache {}, {} ms",
					this.index, result.promptTokens(), this.restoredTokens, result.tokens().length,
					result.finishReason(), result.cacheHit() ? "hit" : "miss",
					(System.nanoTime() - s.admission().admittedNanos()) / 1_000_000);
			EngineLoop.this.metrics.finished(System.nanoTime() - s.admission().admittedNanos(), result.promptTokens(),
					result.tokens().length, s.job().griffin().density(), this.request.useCache, result.cacheHit());
			this.request.finished++;
			this.request.emit(new GenerationEvent.Finished(this.index, result));
			// the session's KV cache is freed at once; choice 0's processed prompt stays
			// until the request ends, since choices that have not started yet start from
			// it
			release(this.index > 0);
		}

		private void release(boolean prompt) {
			if (this.session != null) {
				this.session.close();
				this.session = null;
			}
			if (prompt && this.processed != null) {
				this.processed.close();
				this.processed = null;
			}
		}

		void close() {
			release(true);
		}

	}

}

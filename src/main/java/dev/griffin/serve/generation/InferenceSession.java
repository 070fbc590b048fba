package dev.griffin.serve.generation;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.KvArena;
import dev.griffin.serve.model.KvCache;

/**
 * One sequence's inference state: its own NDManager, KV cache, position and feed-forward
 * state (GRIFFIN's expert selection). Every forward pass runs in its own {@link NDScope},
 * so only the KV cache (written in place) and the feed-forward state outlive a step. Not
 * thread-safe: one sequence is driven by one thread at a time.
 */
public final class InferenceSession implements AutoCloseable {

	private final CausalLm model;

	private final NDManager manager;

	private final KvCache cache;

	private final FeedForward.State[] states;

	private int position;

	private boolean promptFinished;

	public InferenceSession(CausalLm model, int capacity) {
		this(model, capacity, 0);
	}

	/**
	 * @param capacity the most tokens (prompt and generated) the sequence will hold
	 * @param seed seeds the feed-forward blocks' randomness (GRIFFIN's sampling selection
	 * methods)
	 */
	public InferenceSession(CausalLm model, int capacity, long seed) {
		this(model, capacity, seed, null);
	}

	/**
	 * @param arena where the KV cache takes a range when it serves the model and has one
	 * free (so batched steps attend in their few-operation form), or null; otherwise the
	 * cache has tensors of its own
	 */
	public InferenceSession(CausalLm model, int capacity, long seed, KvArena arena) {
		this.model = model;
		this.manager = model.manager().newSubManager();
		KvCache kv = null;
		try {
			if (arena != null && arena.serves(model)) {
				kv = KvCache.inArena(arena, model.config(), capacity, this.manager);
			}
			if (kv == null) {
				kv = new KvCache(model.config(), capacity, this.manager, model.options().cacheDataType());
			}
			this.cache = kv;
			this.states = model.newFeedForwardStates(seed);
		}
		catch (RuntimeException ex) {
			if (kv != null) {
				kv.release();
			}
			this.manager.close();
			throw ex;
		}
	}

	/** Whether the KV cache is a range of a {@link KvArena}. */
	public boolean inArena() {
		return this.cache.arena() != null;
	}

	public FeedForward.State state(int layer) {
		return this.states[layer];
	}

	/**
	 * Runs prompt tokens in chunks of at most {@code chunkSize}, and returns the logits
	 * of the last one. May be called more than once before {@link #finishPrompt()} to
	 * extend the prompt.
	 */
	public float[] prefill(int[] tokens, int chunkSize) {
		if (this.promptFinished) {
			throw new IllegalStateException("the prompt is finished; generation has started");
		}
		if (tokens.length == 0) {
			throw new IllegalArgumentException("a prompt needs at least one token");
		}
		if (chunkSize <= 0) {
			throw new IllegalArgumentException("chunkSize must be positive, got " + chunkSize);
		}
		float[] logits = null;
		for (int from = 0; from < tokens.length; from += chunkSize) {
			int to = Math.min(tokens.length, from + chunkSize);
			logits = run(java.util.Arrays.copyOfRange(tokens, from, to), FeedForward.Phase.PROMPT);
		}
		return logits;
	}

	/**
	 * Runs prompt tokens in one pass, as {@link #prefill} does, and returns the logits
	 * after each of them, [T][V]: a scored prompt's, and tests' and evaluations'.
	 */
	public float[][] prefillAllLogits(int[] tokens) {
		if (this.promptFinished) {
			throw new IllegalStateException("the prompt is finished; generation has started");
		}
		if (tokens.length == 0) {
			throw new IllegalArgumentException("a prompt needs at least one token");
		}
		return runAll(tokens, FeedForward.Phase.PROMPT);
	}

	/**
	 * [count, width] float32 logits as rows, each copied once from the tensor's memory (a
	 * batched step's logits are a vocabulary per sequence).
	 */
	private static float[][] rows(NDArray logits, int count, int width) {
		FloatBuffer all = logits.toType(DataType.FLOAT32, false).toByteBuffer(true).asFloatBuffer();
		if (all.remaining() != (long) count * width) {
			throw new IllegalStateException("%d logits for %d rows of %d".formatted(all.remaining(), count, width));
		}
		float[][] rows = new float[count][width];
		for (float[] row : rows) {
			all.get(row);
		}
		return rows;
	}

	/** Token ids as a [T] int64 array of this session's manager. */
	private NDArray ids(int[] tokens) {
		long[] ids = new long[tokens.length];
		for (int i = 0; i < ids.length; i++) {
			ids[i] = tokens[i];
		}
		return this.manager.create(ids, new Shape(ids.length));
	}

	/**
	 * Ends the prompt phase: feed-forward blocks fix what generation will use (GRIFFIN's
	 * experts).
	 */
	public void finishPrompt() {
		if (this.promptFinished) {
			return;
		}
		if (this.position == 0) {
			throw new IllegalStateException("finishPrompt() before any prompt token");
		}
		try (NDScope scope = new NDScope()) {
			for (FeedForward.State state : this.states) {
				state.finishPrompt(this.manager);
			}
		}
		this.promptFinished = true;
	}

	/**
	 * Prepares what this sequence's lone decode steps read (GRIFFIN's gathered experts,
	 * packed where the model's kernels read packed copies) now instead of in the first
	 * step; a sequence that only decodes in batches of the masked form never needs it.
	 */
	public void gatherWeights() {
		for (FeedForward.State state : this.states) {
			state.gatherWeights(this.model.kernels());
		}
	}

	/**
	 * Captures the processed prompt for the prompt cache: a copy of the prompt's KV cache
	 * and what each feed-forward block fixed for generation (GRIFFIN's experts), whose
	 * ownership moves to the returned entry. The entry starts with one reference (the
	 * cache's); this session keeps reading the shared blocks' state until it closes.
	 * @param owner the manager that outlives the sessions (the model's)
	 */
	PromptCache.Entry snapshot(int[] prompt, float[] lastLogits, NDManager owner) {
		if (!this.promptFinished || this.position != prompt.length) {
			throw new IllegalStateException("snapshot needs a finished prompt and no generated token");
		}
		int layers = this.states.length;
		FeedForward.Prepared[] feedForward = new FeedForward.Prepared[layers];
		for (int i = 0; i < layers; i++) {
			feedForward[i] = this.states[i].share(owner);
		}
		NDArray[][] kv = copyOfCache(owner);
		return new PromptCache.Entry(prompt, kv[0], kv[1], feedForward, lastLogits);
	}

	/**
	 * Starts this sequence from a cached prompt: copies its KV cache and reuses what its
	 * feed-forward blocks fixed.
	 */
	void restore(PromptCache.Entry cached) {
		if (this.position != 0) {
			throw new IllegalStateException("restore needs a fresh session");
		}
		try (NDScope scope = new NDScope()) {
			for (int i = 0; i < this.states.length; i++) {
				this.cache.write(i, 0, cached.keys()[i], cached.values()[i]);
				this.states[i].reuse(cached.feedForward()[i]);
			}
		}
		this.position = cached.tokens().length;
		this.promptFinished = true;
	}

	/**
	 * Which layers' prompt phase records a statistic
	 * ({@link FeedForward.State#recordsPrompt}), one character per layer: a cached prompt
	 * prefix serves the sessions whose layers record what it carries.
	 */
	String promptStatistics() {
		StringBuilder layers = new StringBuilder(this.states.length);
		for (FeedForward.State state : this.states) {
			layers.append(state.recordsPrompt() ? 's' : '-');
		}
		return layers.toString();
	}

	/**
	 * Captures the first tokens of the prompt this sequence is running, for a cached
	 * prompt prefix: a copy of their KV cache and each feed-forward block's statistic of
	 * them. The entry starts with one reference and has no logits.
	 * @param prefix the tokens run so far (all of them: the prompt continues after)
	 * @param owner the manager that outlives the sessions (the model's)
	 */
	PromptCache.Entry snapshotPrefix(int[] prefix, NDManager owner) {
		if (this.promptFinished || this.position != prefix.length || prefix.length == 0) {
			throw new IllegalStateException("a prefix snapshot needs an unfinished prompt of exactly its tokens");
		}
		int layers = this.states.length;
		FeedForward.Prepared[] statistics = new FeedForward.Prepared[layers];
		for (int i = 0; i < layers; i++) {
			statistics[i] = this.states[i].promptSoFar();
		}
		NDArray[][] kv = copyOfCache(owner);
		return new PromptCache.Entry(prefix, kv[0], kv[1], statistics, new float[0]);
	}

	/**
	 * A copy of every layer's keys and values up to this session's position, owned by
	 * {@code owner}: {keys, values}.
	 */
	private NDArray[][] copyOfCache(NDManager owner) {
		int layers = this.states.length;
		NDArray[] keys = new NDArray[layers];
		NDArray[] values = new NDArray[layers];
		for (int i = 0; i < layers; i++) {
			keys[i] = this.cache.keys(i, 0, this.position).duplicate();
			values[i] = this.cache.values(i, 0, this.position).duplicate();
			keys[i].attach(owner);
			values[i].attach(owner);
		}
		NDScope.unregister(keys);
		NDScope.unregister(values);
		return new NDArray[][] { keys, values };
	}

	/**
	 * Starts this sequence's prompt from a cached prefix of it: copies the prefix's KV
	 * cache and its statistics; the rest of the prompt runs from there.
	 */
	void restorePrefix(PromptCache.Entry prefix) {
		if (this.position != 0 || this.promptFinished) {
			throw new IllegalStateException("a prefix restores into a fresh session only");
		}
		if (prefix.tokens().length >= this.cache.capacity()) {
			throw new IllegalStateException("a prefix of %d tokens does not leave room in a session of %d"
				.formatted(prefix.tokens().length, this.cache.capacity()));
		}
		try (NDScope scope = new NDScope()) {
			for (int i = 0; i < this.states.length; i++) {
				this.cache.write(i, 0, prefix.keys()[i], prefix.values()[i]);
				this.states[i].resumePrompt(prefix.feedForward()[i]);
			}
		}
		this.position = prefix.tokens().length;
	}

	/** Runs one generated token and returns the next-token logits. */
	public float[] decode(int token) {
		if (!this.promptFinished) {
			finishPrompt();
		}
		if (recordsGeneration()) {
			return recordGenerated(token);
		}
		return run(new int[] { token }, FeedForward.Phase.GENERATION);
	}

	/**
	 * Whether a feed-forward block waits for this sequence's next generated token before
	 * it fixes what generation uses (GRIFFIN's {@code delayed} selection): the token then
	 * runs as a prompt token does.
	 */
	private boolean recordsGeneration() {
		for (FeedForward.State state : this.states) {
			if (state.recordsGeneration()) {
				return true;
			}
		}
		return false;
	}

	/** A generated token through the prompt phase, for the blocks that wait on it. */
	private float[] recordGenerated(int token) {
		float[] logits = run(new int[] { token }, FeedForward.Phase.PROMPT);
		generatedTokensRecorded();
		return logits;
	}

	/**
	 * Tells the blocks that wait on generated tokens that one more has been recorded (in
	 * the prompt pass, or as a row of a batched step).
	 */
	private void generatedTokensRecorded() {
		try (NDScope scope = new NDScope()) {
			for (FeedForward.State state : this.states) {
				if (state.recordsGeneration()) {
					state.generatedTokenRecorded(this.manager);
				}
			}
		}
	}

	/**
	 * Runs generated tokens known in advance (teacher forcing: the evaluation of a given
	 * continuation) in one pass, after the ones a block waits on one at a time; returns
	 * the next-token logits after each, [T][V].
	 */
	public float[][] decodeAllLogits(int[] tokens) {
		if (!this.promptFinished) {
			finishPrompt();
		}
		float[][] logits = new float[tokens.length][];
		int done = 0;
		while (done < tokens.length && recordsGeneration()) {
			logits[done] = recordGenerated(tokens[done]);
			done++;
		}
		if (done < tokens.length) {
			int[] rest = java.util.Arrays.copyOfRange(tokens, done, tokens.length);
			float[][] after = runAll(rest, FeedForward.Phase.GENERATION);
			System.arraycopy(after, 0, logits, done, after.length);
		}
		return logits;
	}

	/**
	 * Runs one generated token of each session in one pass and returns each one's
	 * next-token logits, as {@link #decode(int)} of each would (within float tolerance:
	 * the products of a batch round as matrix products, not matrix-vector ones). The
	 * sessions must be of one model or its variants ({@link CausalLm#sharesWeights}). A
	 * session whose selection waits on its first generated tokens (GRIFFIN's
	 * {@code delayed}) records them as a dense row of the pass where the model's batch
	 * returns their statistic ({@link CausalLm#recordsInBatch}), else alone, through the
	 * prompt pass.
	 * @return logits[b] for sessions.get(b)
	 */
	public static float[][] decodeBatch(List<InferenceSession> sessions, int[] tokens) {
		int b = sessions.size();
		if (b == 0 || tokens.length != b) {
			throw new IllegalArgumentException("a batch needs at least one session and one token per session");
		}
		requireOneModelEachOnce(sessions);
		for (int i = 0; i < b; i++) {
			if (!sessions.get(i).promptFinished) {
				sessions.get(i).finishPrompt();
			}
		}
		// a sequence whose selection waits on its first generated tokens records them in
		// the batch where the model's batched pass computes their statistic, else runs
		// them alone, as prompt tokens
		List<Integer> batched = new ArrayList<>(b);
		float[][] logits = new float[b][];
		boolean records = false;
		for (InferenceSession session : sessions) {
			records |= session.recordsGeneration();
		}
		boolean recordsInBatch = records && b > 1 && sessions.get(0).model.recordsInBatch();
		for (int i = 0; i < b; i++) {
			if (!recordsInBatch && sessions.get(i).recordsGeneration()) {
				logits[i] = sessions.get(i).recordGenerated(tokens[i]);
			}
			else {
				batched.add(i);
			}
		}
		if (batched.size() == b) {
			float[][] together = decodeTogether(sessions, tokens);
			if (recordsInBatch) {
				for (InferenceSession session : sessions) {
					session.generatedTokensRecorded();
				}
			}
			return together;
		}
		if (!batched.isEmpty()) {
			List<InferenceSession> rest = new ArrayList<>(batched.size());
			int[] restTokens = new int[batched.size()];
			for (int i = 0; i < restTokens.length; i++) {
				rest.add(sessions.get(batched.get(i)));
				restTokens[i] = tokens[batched.get(i)];
			}
			float[][] together = decodeTogether(rest, restTokens);
			for (int i = 0; i < restTokens.length; i++) {
				logits[batched.get(i)] = together[i];
			}
		}
		return logits;
	}

	/** One pass of one generated token of each session, whose prompts are finished. */
	private static float[][] decodeTogether(List<InferenceSession> sessions, int[] tokens) {
		int b = sessions.size();
		InferenceSession first = sessions.get(0);
		int[] positions = new int[b];
		KvCache[] caches = new KvCache[b];
		FeedForward.State[][] states = new FeedForward.State[b][];
		for (int i = 0; i < b; i++) {
			InferenceSession session = sessions.get(i);
			session.check(new int[] { tokens[i] });
			positions[i] = session.position;
			caches[i] = session.cache;
			states[i] = session.states;
		}
		float[][] logits;
		try (NDScope scope = new NDScope()) {
			logits = rows(first.model.decodeBatch(first.ids(tokens), positions, caches, states), b,
					first.model.config().vocabularySize());
		}
		for (InferenceSession session : sessions) {
			session.position++;
		}
		return logits;
	}

	/**
	 * Whether this session's next prompt chunk can share a {@link #prefillBatch} pass:
	 * the prompt is not finished, and the model runs its prompt chunk in the native form.
	 */
	public boolean prefillsTogether() {
		return !this.promptFinished && this.model.promptsTogether(this.cache);
	}

	/**
	 * Runs a prompt chunk of each session in one pass and returns each one's logits after
	 * its chunk's last token, as {@link #prefill} of each would (within float tolerance:
	 * the products of more rows may take another blocked form). Every session must
	 * {@link #prefillsTogether}, of one model or its variants.
	 * @return logits[s] for sessions.get(s)
	 */
	public static float[][] prefillBatch(List<InferenceSession> sessions, List<int[]> chunks) {
		int b = sessions.size();
		if (b == 0 || chunks.size() != b) {
			throw new IllegalArgumentException("a prompt batch needs at least one session and one chunk per session");
		}
		InferenceSession first = sessions.get(0);
		int rows = 0;
		requireOneModelEachOnce(sessions);
		for (int i = 0; i < b; i++) {
			InferenceSession session = sessions.get(i);
			if (chunks.get(i).length == 0) {
				throw new IllegalArgumentException("a prompt needs at least one token");
			}
			if (!session.prefillsTogether()) {
				throw new IllegalArgumentException("a session whose prompt cannot share a pass");
			}
			session.check(chunks.get(i));
			rows += chunks.get(i).length;
		}
		int[] tokens = new int[rows];
		int[] positions = new int[rows];
		KvCache[] caches = new KvCache[rows];
		int[] owners = new int[rows];
		CausalLm[] models = new CausalLm[b];
		FeedForward.State[][] states = new FeedForward.State[b][];
		long[] lasts = new long[b];
		int row = 0;
		for (int i = 0; i < b; i++) {
			InferenceSession session = sessions.get(i);
			int[] chunk = chunks.get(i);
			for (int t = 0; t < chunk.length; t++, row++) {
				tokens[row] = chunk[t];
				positions[row] = session.position + t;
				caches[row] = session.cache;
				owners[row] = i;
			}
			models[i] = session.model;
			states[i] = session.states;
			lasts[i] = row - 1;
		}
		float[][] logits;
		try (NDScope scope = new NDScope()) {
			logits = rows(first.model.promptBatch(first.ids(tokens), positions, caches, owners, models, states, lasts),
					b, first.model.config().vocabularySize());
		}
		for (int i = 0; i < b; i++) {
			sessions.get(i).position += chunks.get(i).length;
		}
		return logits;
	}

	/** Checks that the sessions compute with one model's weights, each session once. */
	private static void requireOneModelEachOnce(List<InferenceSession> sessions) {
		InferenceSession first = sessions.get(0);
		for (int i = 0; i < sessions.size(); i++) {
			InferenceSession session = sessions.get(i);
			if (!first.model.sharesWeights(session.model)) {
				throw new IllegalArgumentException("sessions of different models cannot share a batch");
			}
			for (int j = 0; j < i; j++) {
				if (sessions.get(j) == session) {
					throw new IllegalArgumentException("a session appears twice in one batch");
				}
			}
		}
	}

	/** Checks that {@code tokens} are in the vocabulary and fit this session. */
	private void check(int[] tokens) {
		if (this.position + tokens.length > this.cache.capacity()) {
			throw new IllegalStateException("sequence of %d tokens exceeds this session's capacity %d"
				.formatted(this.position + tokens.length, this.cache.capacity()));
		}
		int vocabulary = this.model.config().vocabularySize();
		for (int token : tokens) {
			if (token < 0 || token >= vocabulary) {
				throw new IllegalArgumentException(
						"token id %d is outside the vocabulary [0, %d)".formatted(token, vocabulary));
			}
		}
	}

	/** The tokens in one pass; the float32 logits after the last. */
	private float[] run(int[] tokens, FeedForward.Phase phase) {
		return run(tokens, phase, false, (logits) -> logits.toType(DataType.FLOAT32, false).toFloatArray());
	}

	/** The tokens in one pass; the logits after each, [T][V], each row copied once. */
	private float[][] runAll(int[] tokens, FeedForward.Phase phase) {
		return run(tokens, phase, true, (logits) -> rows(logits, tokens.length, this.model.config().vocabularySize()));
	}

	private <T> T run(int[] tokens, FeedForward.Phase phase, boolean allLogits, Function<NDArray, T> read) {
		check(tokens);
		try (NDScope scope = new NDScope()) {
			NDArray logits = this.model.forward(ids(tokens), this.position, this.cache, phase, this.states, allLogits);
			T result = read.apply(logits);
			this.position += tokens.length;
			return result;
		}
	}

	@Override
	public void close() {
		for (FeedForward.State state : this.states) {
			state.close();
		}
		this.cache.release();
		this.manager.close();
	}

}

package dev.griffin.serve.generation;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.RemovalCause;
import com.github.benmanes.caffeine.cache.stats.CacheStats;

import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.observability.CacheStatistics;

/**
 * Processed prompts that an exact repeat reuses instead of running prefill and GRIFFIN's
 * expert selection again: per entry the prompt's KV cache, what each feed-forward block
 * fixed for generation (GRIFFIN's expert indices; a sequence gathers their weights
 * itself, and only if its products need them) and the logits of the last prompt token.
 * Keyed by a SHA-256 over the model, precision, GRIFFIN settings, an optional tenant salt
 * and the prompt's token ids; partitioned per tenant and bounded in bytes by a Caffeine
 * weigher. Entries are reference counted, so an evicted entry stays valid for the
 * sequences still reading it. (Its meters keep their historical name,
 * {@code griffin.expert.cache.*}.)
 * <p>
 * The same bytes hold prompt prefixes: the first tokens a prompt shares with a recent
 * prompt of the same model, precision and tenant (a template's system message, the
 * earlier turns of a conversation), their KV cache and each GRIFFIN layer's statistic of
 * them, from which a later prompt runs only its own rest ({@link #startFromPrefix}).
 */
public final class PromptCache implements CacheStatistics {

	/**
	 * Where a prompt's entry lives.
	 *
	 * @param tenant whose partition (the API key), null for the shared one
	 * @param hash see {@link #hash}
	 * @param prefixBase what a cached prefix of the prompt is keyed on besides its tokens
	 * ({@link #prefixBase}), or null when the prompt shares no prefix
	 */
	public record Key(String tenant, String hash, String prefixBase) {

		/** A key whose prompt shares no prefix with others. */
		public Key(String tenant, String hash) {
			this(tenant, hash, null);
		}

	}

	/**
	 * Where a prompt starts ({@link #startFromPrefix}).
	 *
	 * @param restored the prompt's first tokens restored from a cached prefix (0: none)
	 * @param storeAt where the prompt's run should stop once to store its prefix up to
	 * there for the prompts that follow (0: nowhere)
	 */
	public record PrefixStart(int restored, int storeAt) {

		static final PrefixStart NONE = new PrefixStart(0, 0);

	}

	/**
	 * The fewest tokens a cached prefix covers, and the fewest more than the restored
	 * prefix a new one must cover: a prompt stopped to store a prefix runs in one more
	 * pass, which a shorter shared start does not pay back.
	 */
	static final int MIN_PREFIX_TOKENS = 16;

	/**
	 * Recent prompts of one kind a new prompt is compared with, to find shared starts.
	 */
	static final int RECENT_PROMPTS = 16;

	/** Tokens of each recent prompt kept for that comparison. */
	static final int RECENT_PROMPT_TOKENS = 4096;

	/** Lengths of the stored prefixes each kind remembers to look up. */
	static final int STORED_LENGTHS = 32;

	/** Prefix lengths a prompt looks up at most (each a hash of its first tokens). */
	static final int LOOKUPS = 8;

	/**
	 * Kinds of prompt (model, precision, salt, statistics) each tenant keeps an index of.
	 */
	static final int INDEXED_KINDS = 64;

	/**
	 * One processed prompt. Immutable and shared between concurrent sequences.
	 *
	 * @param tokens the prompt's token ids
	 * @param keys per layer [KVH, T, Dh]
	 * @param values per layer [KVH, T, Dh]
	 * @param feedForward per layer, what the block fixed for generation (null for blocks
	 * that fix nothing, such as dense ones)
	 * @param lastLogits next-token logits after the prompt
	 */
	public record Entry(int[] tokens, NDArray[] keys, NDArray[] values, FeedForward.Prepared[] feedForward,
			float[] lastLogits, AtomicInteger references) {

		Entry(int[] tokens, NDArray[] keys, NDArray[] values, FeedForward.Prepared[] feedForward, float[] lastLogits) {
			this(tokens.clone(), keys, values, feedForward, lastLogits.clone(), new AtomicInteger(1));
		}

		/** Takes a reference; false if the entry was already freed. */
		boolean retain() {
			return this.references.getAndUpdate((r) -> (r == 0) ? 0 : r + 1) > 0;
		}

		/** Drops a reference; the last one frees the native memory. */
		void release() {
			if (this.references.decrementAndGet() == 0) {
				for (NDArray array : this.keys) {
					array.close();
				}
				for (NDArray array : this.values) {
					array.close();
				}
				for (FeedForward.Prepared layer : this.feedForward) {
					if (layer != null) {
						layer.close();
					}
				}
			}
		}

		/** Native and heap bytes this entry holds, for the cache's weigher. */
		long bytes() {
			long total = (long) this.lastLogits.length * 4 + (long) this.tokens.length * 4;
			for (int i = 0; i < this.keys.length; i++) {
				total += 2 * this.keys[i].getShape().size() * this.keys[i].getDataType().getNumOfBytes();
			}
			for (FeedForward.Prepared layer : this.feedForward) {
				total += (layer != null) ? layer.bytes() : 0;
			}
			return total;
		}

	}

	/**
	 * Runs a prompt's prefill and ends its prompt phase.
	 */
	@FunctionalInterface
	public interface Prefill {

		/**
		 * @return the logits of the last prompt token, or null when cancelled
		 */
		float[] run();

	}

	/**
	 * A processed prompt as a sequence starts from it; closing it drops the sequence's
	 * reference to the cache entry it reads.
	 *
	 * @param lastLogits the logits of the last prompt token, null when prefill was
	 * cancelled
	 * @param hit whether the prompt came from the cache
	 */
	public record Processed(float[] lastLogits, boolean hit, Entry held) implements AutoCloseable {

		public boolean cancelled() {
			return this.lastLogits == null;
		}

		@Override
		public void close() {
			if (this.held != null) {
				this.held.release();
			}
		}

	}

	/** Each tenant's entries, bounded by its share of the bytes. */
	private final Map<String, Cache<String, Entry>> partitions = new ConcurrentHashMap<>();

	private final AtomicLong bytes = new AtomicLong();

	/**
	 * Per tenant, per kind of prompt, its recent prompts and stored prefix lengths: a
	 * tenant sending prompts of many kinds (salts) replaces its own indexes only.
	 */
	private final Map<String, Cache<String, PrefixIndex>> prefixIndexes = new ConcurrentHashMap<>();

	private final long maximumBytes;

	private final long tenantBytes;

	/** One shared partition holding up to {@code maximumBytes}. */
	public PromptCache(long maximumBytes) {
		this(maximumBytes, 1);
	}

	/**
	 * @param tenants how many tenants share the bytes (the configured API keys); each
	 * stores at most {@code maximumBytes / tenants}, so no tenant's prompts can evict
	 * another's
	 */
	public PromptCache(long maximumBytes, int tenants) {
		if (tenants < 1) {
			throw new IllegalArgumentException("tenants must be >= 1, got " + tenants);
		}
		this.maximumBytes = maximumBytes;
		this.tenantBytes = maximumBytes / tenants;
	}

	private Cache<String, Entry> partition(String tenant) {
		return this.partitions.computeIfAbsent((tenant != null) ? tenant : "",
				(name) -> Caffeine.newBuilder()
					.maximumWeight(this.tenantBytes)
					.weigher((String key, Entry value) -> (int) Math.min(Integer.MAX_VALUE, value.bytes()))
					.executor(Runnable::run)
					.recordStats()
					.removalListener((String key, Entry value, RemovalCause cause) -> {
						if (value != null) {
							this.bytes.addAndGet(-value.bytes());
							value.release();
						}
					})
					.build());
	}

	/**
	 * A prompt processed without a cache: runs {@code prefill} and holds nothing.
	 */
	public static Processed uncached(Prefill prefill) {
		return new Processed(prefill.run(), false, null);
	}

	/**
	 * Starts {@code session} from the cached entry of {@code prompt}, or runs
	 * {@code prefill} in it and stores the result. The returned value holds a reference
	 * to the entry the session reads until it is closed.
	 * @param owner the manager the stored entry's arrays move to (the model's)
	 */
	public Processed acquireOrPrefill(Key key, InferenceSession session, int[] prompt, Prefill prefill,
			NDManager owner) {
		Processed hit = restore(key, session, prompt);
		if (hit != null) {
			return hit;
		}
		float[] logits = prefill.run();
		if (logits == null) {
			return new Processed(null, false, null);
		}
		return store(key, session, prompt, logits, owner);
	}

	/**
	 * Starts {@code session} from the cached entry of {@code prompt}, if there is one.
	 * @return the processed prompt, holding a reference to the entry the session reads
	 * until it is closed; null on a miss
	 */
	public Processed restore(Key key, InferenceSession session, int[] prompt) {
		Entry cached = acquire(key);
		if (cached == null) {
			return null;
		}
		if (!Arrays.equals(cached.tokens(), prompt)) {
			cached.release();
			return null;
		}
		try {
			session.restore(cached);
		}
		catch (RuntimeException ex) {
			cached.release();
			throw ex;
		}
		return new Processed(cached.lastLogits().clone(), true, cached);
	}

	/**
	 * Stores the prompt {@code session} has just processed (its prompt finished, nothing
	 * generated yet).
	 * @param owner the manager the stored entry's arrays move to (the model's)
	 * @return the processed prompt, holding a reference to the stored entry, which the
	 * session reads until it is closed
	 */
	public Processed store(Key key, InferenceSession session, int[] prompt, float[] lastLogits, NDManager owner) {
		Entry entry = session.snapshot(prompt, lastLogits, owner);
		// the sequence keeps reading what it handed over: it holds a reference until done
		entry.retain();
		put(key, entry);
		return new Processed(lastLogits, false, entry);
	}

	/**
	 * Keeps the prompt {@code session} has just processed for other sequences of the same
	 * request (its other choices) without storing it in a cache.
	 * @param owner the manager the entry's arrays move to (the model's)
	 * @return the processed prompt, holding the only reference to the entry
	 */
	public static Processed hold(InferenceSession session, int[] prompt, float[] lastLogits, NDManager owner) {
		Entry entry = session.snapshot(prompt, lastLogits, owner);
		return new Processed(lastLogits, false, entry);
	}

	/**
	 * Starts {@code session} from the prompt another sequence processed (its KV cache is
	 * copied, what its feed-forward blocks fixed is shared).
	 * @param first a processed prompt that holds an entry ({@link #store}, {@link #hold}
	 * or {@link #restore})
	 * @return the processed prompt, holding a reference of its own to the entry
	 */
	public static Processed share(Processed first, InferenceSession session) {
		Entry entry = first.held();
		if (entry == null || !entry.retain()) {
			throw new IllegalStateException("the processed prompt holds no entry to share");
		}
		try {
			session.restore(entry);
		}
		catch (RuntimeException ex) {
			entry.release();
			throw ex;
		}
		return new Processed(entry.lastLogits().clone(), first.hit(), entry);
	}

	/**
	 * Starts {@code session}'s prompt from the longest cached prefix of it, if any, and
	 * says where the prompt should stop to store a longer one: the longest start it
	 * shares with a recent prompt of the same kind (as in a conversation's next turn, or
	 * a template's system message), when that covers at least {@link #MIN_PREFIX_TOKENS}
	 * more than what was restored. A prefix is the prompt's first tokens' KV cache and
	 * each layer's statistic of them, so the rest of the prompt runs as a later chunk of
	 * one chunked prefill would. The session copies what it restores and holds no
	 * reference.
	 */
	public PrefixStart startFromPrefix(Key key, InferenceSession session, int[] prompt) {
		if (key.prefixBase() == null || prompt.length <= MIN_PREFIX_TOKENS) {
			return PrefixStart.NONE;
		}
		String kind = prefixKind(key, session.promptStatistics());
		PrefixIndex index = prefixIndex(key.tenant(), kind);
		PrefixIndex.Candidates candidates = index.candidates(prompt);
		int restored = 0;
		for (int length : candidates.lengths()) {
			int[] prefix = Arrays.copyOf(prompt, length);
			Entry entry = partition(key.tenant()).asMap().get(prefixHash(kind, prefix));
			if (entry == null || !entry.retain()) {
				continue;
			}
			try {
				if (Arrays.equals(entry.tokens(), prefix)) {
					session.restorePrefix(entry);
					restored = length;
					break;
				}
			}
			finally {
				entry.release();
			}
		}
		index.add(prompt);
		int shared = candidates.shared();
		return new PrefixStart(restored, (shared >= restored + MIN_PREFIX_TOKENS) ? shared : 0);
	}

	/**
	 * Stores the first tokens of the prompt {@code session} is running (it has run
	 * exactly these) as a prefix later prompts of the same kind start from.
	 * @param owner the manager the stored entry's arrays move to (the model's)
	 * @return whether it was stored (not when larger than the tenant's share)
	 */
	public boolean storePrefix(Key key, InferenceSession session, int[] prefix, NDManager owner) {
		if (key.prefixBase() == null) {
			throw new IllegalArgumentException("the prompt's key has no prefix base");
		}
		String kind = prefixKind(key, session.promptStatistics());
		Entry entry = session.snapshotPrefix(prefix, owner);
		if (!put(new Key(key.tenant(), prefixHash(kind, prefix)), entry)) {
			return false;
		}
		prefixIndex(key.tenant(), kind).stored(prefix.length);
		return true;
	}

	private PrefixIndex prefixIndex(String tenant, String kind) {
		return this.prefixIndexes
			.computeIfAbsent((tenant != null) ? tenant : "",
					(name) -> Caffeine.newBuilder().maximumSize(INDEXED_KINDS).executor(Runnable::run).build())
			.get(kind, (name) -> new PrefixIndex());
	}

	/** The kind of a prompt's prefixes: its prefix base and which layers record. */
	private static String prefixKind(Key key, String statistics) {
		return digest((digest) -> {
			update(digest, "prefix");
			update(digest, key.prefixBase());
			update(digest, statistics);
		});
	}

	private static String prefixHash(String kind, int[] prefix) {
		return digest((digest) -> {
			update(digest, kind);
			update(digest, prefix);
		});
	}

	/**
	 * What a prompt's prefixes are keyed on besides their tokens: SHA-256 over what
	 * changes a prompt's KV cache and statistics (the model and its precision) and the
	 * tenant's salt. GRIFFIN's density and method are not in it: the prompt runs every
	 * neuron whatever they are, and the layers' statistics are told apart by
	 * {@link InferenceSession#promptStatistics}.
	 */
	public static String prefixBase(String modelId, String dtype, String tenantSalt) {
		return digest((digest) -> {
			update(digest, modelId);
			update(digest, dtype);
			update(digest, (tenantSalt != null) ? tenantSalt : "");
		});
	}

	/**
	 * The hash of a prompt's key: SHA-256 over every input that changes what a prompt's
	 * processing produces.
	 */
	public static String hash(String modelId, String dtype, DensitySchedule schedule, SelectionMethod method,
			Long selectionSeed, String tenantSalt, int[] tokens) {
		return digest((digest) -> {
			update(digest, modelId);
			update(digest, dtype);
			update(digest, (schedule != null) ? schedule.toString() : "dense");
			update(digest, (method != null) ? method.wireName() : "dense");
			update(digest, (selectionSeed != null) ? selectionSeed.toString() : "");
			update(digest, (tenantSalt != null) ? tenantSalt : "");
			update(digest, tokens);
		});
	}

	/** The SHA-256, in hex, of what {@code parts} feeds it. */
	private static String digest(Consumer<MessageDigest> parts) {
		try {
			MessageDigest digest = MessageDigest.getInstance("SHA-256");
			parts.accept(digest);
			return HexFormat.of().formatHex(digest.digest());
		}
		catch (NoSuchAlgorithmException ex) {
			throw new IllegalStateException("SHA-256 is required by the Java platform", ex);
		}
	}

	private static void update(MessageDigest digest, String part) {
		byte[] bytes = part.getBytes(StandardCharsets.UTF_8);
		digest.update(ByteBuffer.allocate(4).putInt(bytes.length).array());
		digest.update(bytes);
	}

	private static void update(MessageDigest digest, int[] tokens) {
		ByteBuffer ids = ByteBuffer.allocate(tokens.length * 4);
		for (int token : tokens) {
			ids.putInt(token);
		}
		digest.update(ids.array());
	}

	/** A retained entry (the caller must {@link Entry#release()} it), or null. */
	Entry acquire(Key key) {
		Entry entry = partition(key.tenant()).getIfPresent(key.hash());
		return (entry != null && entry.retain()) ? entry : null;
	}

	/**
	 * Stores an entry whose single reference becomes the cache's, in the tenant's
	 * partition (evicting that tenant's entries only). Entries larger than a tenant's
	 * share are not kept.
	 * @return whether the entry was stored
	 */
	boolean put(Key key, Entry entry) {
		if (entry.bytes() > this.tenantBytes) {
			entry.release();
			return false;
		}
		this.bytes.addAndGet(entry.bytes());
		Cache<String, Entry> partition = partition(key.tenant());
		// a replaced entry (two concurrent misses of one prompt) goes through
		// the removal listener
		partition.put(key.hash(), entry);
		partition.cleanUp();
		return true;
	}

	/** The most bytes one tenant's entries may hold. */
	public long tenantBytes() {
		return this.tenantBytes;
	}

	@Override
	public long bytes() {
		return this.bytes.get();
	}

	public long maximumBytes() {
		return this.maximumBytes;
	}

	@Override
	public long size() {
		return this.partitions.values().stream().mapToLong(Cache::estimatedSize).sum();
	}

	@Override
	public long evictionCount() {
		return stats().evictionCount();
	}

	/** Hits, misses and evictions over every partition. */
	public CacheStats stats() {
		return this.partitions.values().stream().map(Cache::stats).reduce(CacheStats.empty(), CacheStats::plus);
	}

	/** Drops every entry, and the recent prompts the prefixes were found with. */
	public void invalidateAll() {
		this.prefixIndexes.clear();
		this.partitions.values().forEach((partition) -> {
			partition.invalidateAll();
			partition.cleanUp();
		});
	}

	/**
	 * One kind of prompt's recent prompts (their first {@link #RECENT_PROMPT_TOKENS}
	 * tokens) and the lengths of its stored prefixes, newest first.
	 */
	private static final class PrefixIndex {

		/**
		 * @param lengths prefix lengths worth looking up for a prompt, longest first
		 * @param shared the longest start the prompt shares with a recent prompt (at most
		 * all its tokens but the last)
		 */
		record Candidates(int[] lengths, int shared) {

		}

		private final ArrayDeque<int[]> recent = new ArrayDeque<>();

		private final ArrayDeque<Integer> stored = new ArrayDeque<>();

		synchronized Candidates candidates(int[] prompt) {
			// the last token always runs: its logits start generation
			int most = prompt.length - 1;
			TreeSet<Integer> lengths = new TreeSet<>(Comparator.reverseOrder());
			int shared = 0;
			for (int[] other : this.recent) {
				int mismatch = Arrays.mismatch(prompt, other);
				int common = Math.min(most, (mismatch < 0) ? prompt.length : mismatch);
				shared = Math.max(shared, common);
				if (common >= MIN_PREFIX_TOKENS) {
					lengths.add(common);
				}
			}
			for (int length : this.stored) {
				if (length <= most) {
					lengths.add(length);
				}
			}
			return new Candidates(lengths.stream().limit(LOOKUPS).mapToInt(Integer::intValue).toArray(), shared);
		}

		synchronized void add(int[] prompt) {
			int[] kept = Arrays.copyOf(prompt, Math.min(prompt.length, RECENT_PROMPT_TOKENS));
			this.recent.removeIf((other) -> Arrays.equals(other, kept));
			this.recent.addFirst(kept);
			while (this.recent.size() > RECENT_PROMPTS) {
				this.recent.removeLast();
			}
		}

		synchronized void stored(int length) {
			this.stored.remove(length);
			this.stored.addFirst(length);
			while (this.stored.size() > STORED_LENGTHS) {
				this.stored.removeLast();
			}
		}

	}

}

package dev.griffin.serve.griffin;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.RemovalCause;
import com.github.benmanes.caffeine.cache.stats.CacheStats;

/**
 * GRIFFIN's expert cache: processed prompts (experts, gathered weights, KV cache, last
 * logits) keyed by a SHA-256 over the model, precision, GRIFFIN settings, an optional
 * tenant salt and the prompt's token ids. Bounded in bytes by a Caffeine weigher; entries
 * are reference counted so that an evicted entry stays valid for the sequences still
 * reading it.
 */
public final class ExpertCache {

	/** Each tenant's entries, bounded by its share of the bytes. */
	private final Map<String, Cache<String, CachedPrompt>> partitions = new ConcurrentHashMap<>();

	private final AtomicLong bytes = new AtomicLong();

	private final long maximumBytes;

	private final long tenantBytes;

	/** One shared partition holding up to {@code maximumBytes}. */
	public ExpertCache(long maximumBytes) {
		this(maximumBytes, 1);
	}

	/**
	 * @param tenants how many tenants share the bytes (the configured API keys); each
	 * stores at most {@code maximumBytes / tenants}, so no tenant's prompts can evict
	 * another's
	 */
	public ExpertCache(long maximumBytes, int tenants) {
		if (tenants < 1) {
			throw new IllegalArgumentException("tenants must be >= 1, got " + tenants);
		}
		this.maximumBytes = maximumBytes;
		this.tenantBytes = maximumBytes / tenants;
	}

	private Cache<String, CachedPrompt> partition(String tenant) {
		return this.partitions.computeIfAbsent((tenant != null) ? tenant : "",
				(name) -> Caffeine.newBuilder()
					.maximumWeight(this.tenantBytes)
					.weigher((String key, CachedPrompt value) -> (int) Math.min(Integer.MAX_VALUE, value.bytes()))
					.executor(Runnable::run)
					.recordStats()
					.removalListener((String key, CachedPrompt value, RemovalCause cause) -> {
						if (value != null) {
							this.bytes.addAndGet(-value.bytes());
							value.release();
						}
					})
					.build());
	}

	/**
	 * The cache key: SHA-256 over every input that changes what a prompt's processing
	 * produces.
	 */
	public static String key(String modelId, String dtype, DensitySchedule schedule, SelectionMethod method,
			Long selectionSeed, String tenantSalt, int[] tokens) {
		try {
			MessageDigest digest = MessageDigest.getInstance("SHA-256");
			update(digest, modelId);
			update(digest, dtype);
			update(digest, (schedule != null) ? schedule.toString() : "dense");
			update(digest, (method != null) ? method.wireName() : "dense");
			update(digest, (selectionSeed != null) ? selectionSeed.toString() : "");
			update(digest, (tenantSalt != null) ? tenantSalt : "");
			ByteBuffer ids = ByteBuffer.allocate(tokens.length * 4);
			for (int token : tokens) {
				ids.putInt(token);
			}
			digest.update(ids.array());
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

	/** A retained entry (the caller must {@link CachedPrompt#release()} it), or null. */
	public CachedPrompt acquire(String tenant, String key) {
		CachedPrompt entry = partition(tenant).getIfPresent(key);
		return (entry != null && entry.retain()) ? entry : null;
	}

	/**
	 * Stores an entry whose single reference becomes the cache's, in the tenant's
	 * partition (evicting that tenant's entries only). Entries larger than a tenant's
	 * share are not kept.
	 * @return whether the entry was stored
	 */
	public boolean put(String tenant, String key, CachedPrompt entry) {
		if (entry.bytes() > this.tenantBytes) {
			entry.release();
			return false;
		}
		this.bytes.addAndGet(entry.bytes());
		Cache<String, CachedPrompt> partition = partition(tenant);
		// a replaced entry (two concurrent misses of one prompt) goes through
		// the removal listener
		partition.put(key, entry);
		partition.cleanUp();
		return true;
	}

	/** The most bytes one tenant's entries may hold. */
	public long tenantBytes() {
		return this.tenantBytes;
	}

	public long bytes() {
		return this.bytes.get();
	}

	public long maximumBytes() {
		return this.maximumBytes;
	}

	public long size() {
		return this.partitions.values().stream().mapToLong(Cache::estimatedSize).sum();
	}

	/** Hits, misses and evictions over every partition. */
	public CacheStats stats() {
		return this.partitions.values().stream().map(Cache::stats).reduce(CacheStats.empty(), CacheStats::plus);
	}

	public void invalidateAll() {
		this.partitions.values().forEach((partition) -> {
			partition.invalidateAll();
			partition.cleanUp();
		});
	}

}

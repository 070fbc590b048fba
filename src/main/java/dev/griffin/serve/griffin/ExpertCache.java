package dev.griffin.serve.griffin;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
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

	private final Cache<String, CachedPrompt> cache;

	private final AtomicLong bytes = new AtomicLong();

	private final long maximumBytes;

	public ExpertCache(long maximumBytes) {
		this.maximumBytes = maximumBytes;
		this.cache = Caffeine.newBuilder()
			.maximumWeight(maximumBytes)
			.weigher((String key, CachedPrompt value) -> (int) Math.min(Integer.MAX_VALUE, value.bytes()))
			.executor(Runnable::run)
			.recordStats()
			.removalListener((String key, CachedPrompt value, RemovalCause cause) -> {
				if (value != null) {
					this.bytes.addAndGet(-value.bytes());
					value.release();
				}
			})
			.build();
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
	public CachedPrompt acquire(String key) {
		CachedPrompt entry = this.cache.getIfPresent(key);
		return (entry != null && entry.retain()) ? entry : null;
	}

	/**
	 * Stores an entry whose single reference becomes the cache's. Entries larger than the
	 * whole cache are not kept.
	 * @return whether the entry was stored
	 */
	public boolean put(String key, CachedPrompt entry) {
		if (entry.bytes() > this.maximumBytes) {
			entry.release();
			return false;
		}
		this.bytes.addAndGet(entry.bytes());
		// a replaced entry (two concurrent misses of one prompt) goes through the removal
		// listener
		this.cache.put(key, entry);
		this.cache.cleanUp();
		return true;
	}

	public long bytes() {
		return this.bytes.get();
	}

	public long maximumBytes() {
		return this.maximumBytes;
	}

	public long size() {
		return this.cache.estimatedSize();
	}

	public CacheStats stats() {
		return this.cache.stats();
	}

	public void invalidateAll() {
		this.cache.invalidateAll();
		this.cache.cleanUp();
	}

}

package dev.griffin.serve.observability;

/**
 * What the meters read from a cache; the cache implements it, so this package needs no
 * cache type.
 */
public interface CacheStatistics {

	/** Bytes the entries hold. */
	long bytes();

	/** Entries held. */
	long size();

	/** Entries evicted so far. */
	long evictionCount();

}

package dev.griffin.serve.generation;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Work waiting for the engine, served fairly across tenants: the next work is the oldest
 * of the tenant served least recently, so a tenant with many queued requests delays a
 * newcomer by at most the requests already running, never by its backlog. Within a
 * tenant, first come first served. Unbounded by itself: the admission permits bound what
 * can be queued (and the tenants are the configured API keys).
 */
final class FairQueue<T> {

	/** Tenants with queued work, in arrival order. */
	private final Map<String, ArrayDeque<T>> queues = new LinkedHashMap<>();

	/** When each tenant was last served, by a counter of polls. */
	private final Map<String, Long> lastServed = new HashMap<>();

	private long polls;

	private int size;

	synchronized void put(String tenant, T work) {
		this.queues.computeIfAbsent((tenant != null) ? tenant : "", (key) -> new ArrayDeque<>()).add(work);
		this.size++;
	}

	/** The next work, or null when there is none. */
	synchronized T poll() {
		if (this.size == 0) {
			return null;
		}
		String next = null;
		long oldest = Long.MAX_VALUE;
		for (String tenant : this.queues.keySet()) {
			long served = this.lastServed.getOrDefault(tenant, -1L);
			if (served < oldest) {
				oldest = served;
				next = tenant;
			}
		}
		ArrayDeque<T> queue = this.queues.get(next);
		T work = queue.poll();
		if (queue.isEmpty()) {
			this.queues.remove(next);
		}
		this.lastServed.put(next, this.polls++);
		this.size--;
		return work;
	}

	synchronized int size() {
		return this.size;
	}

}

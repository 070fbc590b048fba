package dev.griffin.serve.generation;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

import dev.griffin.serve.model.Kernels;
import dev.griffin.serve.model.KvArena;
import dev.griffin.serve.model.KvCache;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.ModelOptions;

/**
 * Where the service's memory goes, in bytes, so that a configuration that cannot fit is
 * refused at start instead of being killed under load. The Helm chart adds up the same
 * parts (in MiB) to set the pod's memory limit and the JVM's flags.
 *
 * @param heap the JVM heap's maximum
 * @param direct the JVM's direct-buffer cap (Netty, and the blocks a load stages)
 * @param weights the model's weights, in libtorch's memory, with their packed copies
 * where the model has them
 * @param cache the prompt cache's byte bound
 * @param perSequence what one running sequence can take at the longest context: KV cache,
 * gathered experts just below density 1, and the activations of a prefill chunk
 * @param sequences sequences that run at once (griffin.generation.workers)
 * @param arena the engine's KV arena ({@link #arena}): pages its ranges were written in
 * stay committed, beside the caches of sequences that found no range
 * @param overhead the rest: JVM metaspace, code and threads, libtorch, tokenizers
 */
public record MemoryBudget(long heap, long direct, long weights, long cache, long perSequence, int sequences,
		long arena, long overhead) {

	/** The sum of the parts. */
	public long total() {
		return this.heap + this.direct + this.weights + this.cache + this.sequences * this.perSequence + this.arena
				+ this.overhead;
	}

	/**
	 * The KV arena of an engine that runs {@code workers} sequences with
	 * {@code tokensPerWorker} arena tokens each (none with one worker).
	 */
	public static long arena(ModelConfig config, ModelOptions options, int workers, int tokensPerWorker) {
		return KvCache.bytes(config, options.cacheDataType(), KvArena.tokensFor(config, workers, tokensPerWorker));
	}

	/**
	 * Parameters the model holds, in bytes of its compute precision, plus the packed
	 * copies of its matrices (every layer's products and the output head, tied or not)
	 * when a load makes them ({@link ModelOptions#packsAtLoad()}): they are held at least
	 * while calibration runs.
	 */
	public static long weights(ModelConfig config, ModelOptions options) {
		long d = config.hiddenSize();
		long queries = (long) config.numberOfAttentionHeads() * config.headDimension();
		long keyValues = (long) config.numberOfKeyValueHeads() * config.headDimension();
		long attention = d * queries * 2 + d * keyValues * 2;
		long feedForward = config.feedForwardMatrices() * d * config.intermediateSize();
		long head = (long) config.vocabularySize() * config.wordEmbeddingSize();
		long embedding = head * (config.tieWordEmbeddings() ? 1 : 2);
		// OPT's learned positions and projections between the embeddings' width and D
		long extra = (config.learnsPositions() ? (long) config.positionEmbeddingRows() * d : 0)
				+ (config.projectsEmbeddings() ? 2L * d * config.wordEmbeddingSize() : 0);
		long parameters = embedding + extra + config.numberOfLayers() * (attention + feedForward + 2 * d);
		long packed = options.packsAtLoad() ? head + config.numberOfLayers() * (attention + feedForward) : 0;
		return (parameters + packed) * options.dtype().bytes();
	}

	/**
	 * One running sequence at the model's full context: its KV cache, experts gathered at
	 * the largest density below 1 (the dense path gathers nothing), and a prefill chunk's
	 * activations (the attention scores of the chunk against the whole context dominate).
	 */
	public static long perSequence(ModelConfig config, ModelOptions options, int prefillChunk) {
		long context = config.maxPositionEmbeddings();
		long kv = KvCache.bytes(config, options.cacheDataType(), context);
		long experts = (long) config.feedForwardMatrices() * config.hiddenSize() * config.intermediateSize()
				* config.numberOfLayers() * options.dtype().bytes();
		long chunk = Math.min(prefillChunk, context);
		// scores and their softmax, the feed-forward's three [T, F] products,
		// the hidden states
		long activations = attentionScores(config, options, chunk, context) + 3L * chunk * config.intermediateSize() * 4
				+ 8L * chunk * config.hiddenSize() * 4;
		long converted;
		if (options.prefillKernel() == Kernels.Prefill.BFLOAT16) {
			// the bfloat16 form converts a block of weight rows at a time and holds the
			// stacked gate/up product's bfloat16 parts and their concatenation
			converted = Kernels.BFLOAT16_BLOCK_BYTES + 2L * chunk * 2 * config.intermediateSize() * 2;
		}
		else if (options.dtype() == ModelOptions.Precision.FLOAT16 && options.device().equals("cpu")) {
			// the float32 prefill form widens one half-precision weight at a time, the
			// largest being the stacked gate/up projection
			converted = 2L * config.intermediateSize() * config.hiddenSize() * 4;
		}
		else {
			converted = 0;
		}
		return kv + experts + activations + converted;
	}

	/**
	 * The attention scores of {@code queries} tokens against {@code keys} keys and their
	 * softmax, all heads.
	 */
	public static long attentionScores(ModelConfig config, ModelOptions options, long queries, long keys) {
		return 2L * config.numberOfAttentionHeads() * queries * keys * options.attentionDataType().getNumOfBytes();
	}

	/**
	 * The memory limit of this process's container (cgroup v2 {@code memory.max}, else
	 * v1), if it has one.
	 */
	public static OptionalLong containerLimit() {
		for (Path file : new Path[] { Path.of("/sys/fs/cgroup/memory.max"),
				Path.of("/sys/fs/cgroup/memory/memory.limit_in_bytes") }) {
			try {
				String text = Files.readString(file).trim();
				if (!text.equals("max")) {
					long limit = Long.parseLong(text);
					// cgroup v1 reports "no limit" as a huge page-aligned number
					if (limit < (1L << 50)) {
						return OptionalLong.of(limit);
					}
				}
			}
			catch (IOException | NumberFormatException ex) {
				// not this cgroup version
			}
		}
		return OptionalLong.empty();
	}

	/** A readable breakdown, in MiB. */
	@Override
	public String toString() {
		return ("heap %d + direct %d + weights %d + cache %d + %d x %d per sequence + KV arena %d + overhead %d = %d MiB")
			.formatted(mib(this.heap), mib(this.direct), mib(this.weights), mib(this.cache), this.sequences,
					mib(this.perSequence), mib(this.arena), mib(this.overhead), mib(total()));
	}

	static long mib(long bytes) {
		return (bytes + (1 << 20) - 1) >> 20;
	}

}

package dev.griffin.serve.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.Sampler;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.Kernels;
import dev.griffin.serve.model.KvArena;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.model.ModelConfig;

/**
 * Batch-1 speed of dense vs GRIFFIN, side by side in one run: prefill and decode
 * tokens/s, time to first token, the bytes of weights a decode step reads and the
 * bandwidth that implies.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
		description = "Measure prefill/decode speed of dense vs GRIFFIN; prints a table and writes JSON.")
public class BenchCommand implements Callable<Integer> {

	private static final String TEXT = """
			The river rises in the hills above the town and runs for forty miles to the sea. In spring the \
			snow melts and the water climbs the stone walls that the first settlers built, and every few \
			years it spills into the low streets near the market. The council has argued for a decade about \
			a new barrier: engineers say it would protect four hundred homes, shop owners worry that years \
			of building work would keep visitors away, and farmers upstream want the money spent on \
			reservoirs instead. Last week the regional government offered to pay half of the cost if the \
			town finds the rest by the end of next year. """;

	@Mixin
	ModelOptionsMixin model;

	@Option(names = "--prompt-tokens", defaultValue = "512", split = ",",
			description = "Prompt lengths, e.g. 128,512,2048 (default: ${DEFAULT-VALUE}).")
	List<Integer> promptTokens;

	@Option(names = "--new-tokens", defaultValue = "128", split = ",",
			description = "Generated tokens, e.g. 128,512; every prompt length runs with each (default: ${DEFAULT-VALUE}).")
	List<Integer> newTokens;

	@Option(names = "--dtypes", defaultValue = "float32,float16", split = ",")
	List<String> dtypes;

	@Option(names = "--densities", defaultValue = "1.0,0.5", split = ",",
			description = "1.0 is the dense model; others are GRIFFIN with --method.")
	List<Double> densities;

	@Option(names = "--method", split = ",", defaultValue = "topk",
			description = "GRIFFIN selection methods, each measured at every density below 1 (default: ${DEFAULT-VALUE}).")
	List<String> methods;

	@Option(names = "--runs", defaultValue = "3", description = "Measured runs per configuration (median reported).")
	int runs;

	@Option(names = "--warmups", defaultValue = "2",
			description = "Unmeasured runs of every configuration before the measured ones (default: ${DEFAULT-VALUE}).")
	int warmups;

	@Option(names = "--compare-pool",
			description = "Also run every density on libtorch's own thread pool in the weights' precision "
					+ "(the engine without a kernel plan), interleaved with the chosen kernels.")
	boolean comparePool;

	@Option(names = "--batch", split = ",",
			description = "Also decode this many sequences together, one engine pass per step (e.g. 1,4,16): "
					+ "aggregate and per-sequence decode tokens/s for every density. Each sequence has its own prompt "
					+ "of --prompt-tokens tokens, prefilled untimed before each run.")
	List<Integer> batch;

	@Option(names = "--kv", split = ",", defaultValue = "arena",
			description = "Where --batch sequences keep their KV caches: arena (ranges of one preallocated tensor per "
					+ "layer, as the engine does; batched attention in a few operations per layer), own (tensors of "
					+ "their own; attention row by row), or arena,own to measure both side by side "
					+ "(default: ${DEFAULT-VALUE}).")
	List<String> kv;

	@Option(names = "--kv-cache-dtypes", split = ",",
			description = "KV cache precisions to measure every configuration with, side by side: auto (the "
					+ "weights'), float32, float16; e.g. float32,float16 (default: the one --kv-cache-dtype names).")
	List<String> kvCacheDtypes;

	@Option(names = "--lockstep",
			description = "Also decode every configuration in lockstep: a sequence of each, after an untimed prefill, "
					+ "one step of each in turn (greedy), so that the machine's drift from second to second falls on "
					+ "all of them alike; each one's decode tokens/s and ratio to dense come from its summed step times.")
	boolean lockstep;

	@Option(names = "--temperature", defaultValue = "0",
			description = "Draw each decoded token at this temperature (seeded; top-p 1), so that decode rates "
					+ "include the sampler's work as the server does it; 0: greedy (--lockstep stays greedy).")
	double temperature;

	@Option(names = "--output", defaultValue = "target/bench.json")
	Path output;

	@Override
	public Integer call() throws IOException {
		this.model.configureEngine();
		List<SelectionMethod> selections = this.methods.stream().map(SelectionMethod::parse).distinct().toList();
		List<Map<String, Object>> rows = new ArrayList<>();
		List<Map<String, Object>> plans = new ArrayList<>();
		List<Map<String, Object>> operations = new ArrayList<>();
		List<Map<String, Object>> batchRows = new ArrayList<>();
		List<Map<String, Object>> lockstepRows = new ArrayList<>();
		if (this.batch != null && this.batch.stream().anyMatch((b) -> b < 1)) {
			throw new CommandLine.ParameterException(new CommandLine(this), "--batch sizes must be at least 1");
		}
		double machine = ReadBandwidth.measure();
		System.out.printf(
				"machine read bandwidth: %.1f GB/s (libtorch's fastest read of a 1 GiB buffer, sum or matrix-vector product, %d threads)%n",
				machine, ai.djl.pytorch.jni.JniUtils.getNumThreads());
		for (String dtype : this.dtypes) {
			this.model.dtype = dtype;
			try (LoadedModel loaded = this.model.load((layers) -> {
			})) {
				System.out.printf("%s kernels: %s%n", dtype, loaded.kernels());
				plans.add(Map.of("dtype", dtype, "kernels", loaded.kernels().kernels().toString(), "calibration",
						loaded.kernels().toString()));
				List<Kernels> kernels = new ArrayList<>(List.of(loaded.dense().kernels()));
				if (this.comparePool) {
					kernels.add(new Kernels(Kernels.Decode.POOL, Kernels.Prefill.WEIGHTS,
							loaded.dense().kernels().threads()));
				}
				List<Config> configs = new ArrayList<>();
				int layers = loaded.dense().config().numberOfLayers();
				for (ModelOptions.Precision cache : caches()) {
					for (Kernels plan : kernels) {
						for (double density : this.densities) {
							// the dense model once; every method at a density below 1
							for (SelectionMethod selection : (density == 1.0) ? List.of(SelectionMethod.TOPK)
									: selections) {
								CausalLm variant = loaded.variant(density, selection).withKernels(plan);
								if (this.kvCacheDtypes != null) {
									variant = variant.withKvCache(cache);
								}
								String method = (density == 1.0) ? "dense" : selection.wireName();
								int ops = OpCount.decodeStep(variant);
								System.out.printf(
										"%s density %s %s, %s: %d libtorch operations per decode step (%.1f per layer)%n",
										dtype, density, method, plan, ops, (double) ops / layers);
								operations.add(Map.of("dtype", dtype, "density", density, "method", method, "kernels",
										plan.toString(), "decodeOperations", ops, "decodeOperationsPerLayer",
										(double) ops / layers));
								configs.add(new Config(density, method, plan, variant,
										new Generator(variant, loaded.tokenizer())));
							}
						}
					}
				}
				System.out.printf("%-8s %-24s %-8s %7s %5s %-14s %12s %10s %12s %10s %10s %12s %10s %8s%n", "dtype",
						"kernels", "cache", "prompt", "new", "density", "prefill t/s", "select ms", "decode t/s",
						"TTFT ms", "vs dense", "MB/token", "GB/s", "of max");
				for (int promptLength : this.promptTokens) {
					int[] prompt = prompt(loaded, promptLength);
					for (int newTokens : this.newTokens) {
						rows.addAll(measure(loaded, configs, dtype, prompt, newTokens, machine));
					}
				}
				for (int promptLength : this.promptTokens) {
					int[] prompt = prompt(loaded, promptLength);
					for (int newTokens : this.lockstep ? this.newTokens : List.<Integer>of()) {
						lockstepRows.addAll(measureLockstep(configs, dtype, prompt, newTokens));
					}
				}
				if (this.batch != null && !this.batch.isEmpty()) {
					batchRows.addAll(measureBatches(loaded, configs, dtype, machine));
				}
			}
		}
		Map<String, Object> report = new LinkedHashMap<>();
		report.put("model", this.model.modelPath().getFileName().toString());
		report.put("threads", (this.model.threads != null) ? this.model.threads : "engine default");
		report.put("processors", Runtime.getRuntime().availableProcessors());
		report.put("machineReadBandwidthGBps", machine);
		report.put("kernels", plans);
		report.put("decodeOperations", operations);
		report.put("results", rows);
		report.put("batchResults", batchRows);
		report.put("lockstepResults", lockstepRows);
		JsonReport.write(this.output, report);
		System.out.println("wrote " + this.output);
		return 0;
	}

	/** One prompt length and generation length: every density, printed and as rows. */
	private List<Map<String, Object>> measure(LoadedModel loaded, List<Config> configs, String dtype, int[] prompt,
			int newTokens, double machine) {
		SamplingParams params = sampling(newTokens);
		int n = configs.size();
		Generator[] generators = configs.stream().map(Config::generator).toArray(Generator[]::new);
		// Warm every configuration first (allocator, thread pool, kernel caches), then
		// interleave the measured runs so that drift on a shared machine affects all
		// configurations alike.
		for (int warm = 0; warm < this.warmups; warm++) {
			for (Generator generator : generators) {
				generator.generate(prompt, params, (token, text) -> true);
			}
		}
		double[][] prefill = new double[n][this.runs];
		double[][] decode = new double[n][this.runs];
		double[][] ttft = new double[n][this.runs];
		double[][] selection = new double[n][this.runs];
		for (int r = 0; r < this.runs; r++) {
			for (int i = 0; i < n; i++) {
				Generator.Timings t = generators[i].generate(prompt, params, (token, text) -> true).timings();
				prefill[i][r] = prompt.length / (t.prefillNanos() / 1e9);
				selection[i][r] = t.selectionNanos() / 1e6;
				decode[i][r] = t.decodeTokensPerSecond();
				ttft[i][r] = t.firstTokenNanos() / 1e6;
			}
		}
		List<Map<String, Object>> rows = new ArrayList<>();
		for (int i = 0; i < n; i++) {
			Config config = configs.get(i);
			double density = config.density();
			double decodeMedian = median(decode[i]);
			long bytes = bytesPerToken(loaded.dense(), density);
			double bandwidth = bytes * decodeMedian / 1e9;
			int dense = dense(configs, config);
			double ratio = (dense < 0) ? Double.NaN : decodeMedian / median(decode[dense]);
			String kernels = "%s/%s".formatted(config.kernels().decode(), config.kernels().prefill()).toLowerCase();
			System.out.printf("%-8s %-24s %-8s %7d %5d %-14s %12.1f %10.2f %12.2f %10.1f %10s %12.1f %10.2f %7.0f%%%n",
					dtype, kernels, config.cache(), prompt.length, newTokens, config.label(), median(prefill[i]),
					median(selection[i]), decodeMedian, median(ttft[i]),
					Double.isNaN(ratio) ? "-" : "%.3fx".formatted(ratio), bytes / 1e6, bandwidth,
					100 * bandwidth / machine);
			Map<String, Object> row = new LinkedHashMap<>();
			row.put("dtype", dtype);
			row.put("kernels", config.kernels().toString());
			row.put("cache", config.cache());
			row.put("density", density);
			row.put("method", config.method());
			row.put("promptTokens", prompt.length);
			row.put("newTokens", newTokens);
			row.put("prefillTokensPerSecond", median(prefill[i]));
			row.put("decodeTokensPerSecond", decodeMedian);
			row.put("timeToFirstTokenMs", median(ttft[i]));
			row.put("selectionMs", median(selection[i]));
			row.put("decodeRatioToDense", ratio);
			row.put("weightBytesPerToken", bytes);
			row.put("impliedBandwidthGBps", bandwidth);
			row.put("fractionOfMachineBandwidth", bandwidth / machine);
			row.put("runs", Map.of("prefillTokensPerSecond", prefill[i], "decodeTokensPerSecond", decode[i],
					"timeToFirstTokenMs", ttft[i], "selectionMs", selection[i]));
			rows.add(row);
		}
		return rows;
	}

	/**
	 * --lockstep: every configuration's sequence decodes one greedy step in turn, runs
	 * after --warmups unmeasured ones; decode tokens/s from each configuration's summed
	 * step times (median over runs) and its ratio to the dense configuration of the same
	 * kernels and cache.
	 */
	private List<Map<String, Object>> measureLockstep(List<Config> configs, String dtype, int[] prompt, int newTokens) {
		int n = configs.size();
		double[][] rates = new double[n][this.runs];
		for (int r = -this.warmups; r < this.runs; r++) {
			long[] nanos = lockstepRun(configs, prompt, newTokens);
			for (int i = 0; i < n && r >= 0; i++) {
				rates[i][r] = newTokens / (nanos[i] / 1e9);
			}
		}
		System.out.printf("lockstep: one step of each configuration in turn%n");
		System.out.printf("%-8s %-24s %-8s %7s %5s %-14s %12s %10s%n", "dtype", "kernels", "cache", "prompt", "new",
				"density", "decode t/s", "vs dense");
		List<Map<String, Object>> rows = new ArrayList<>();
		for (int i = 0; i < n; i++) {
			Config config = configs.get(i);
			double rate = median(rates[i]);
			int dense = dense(configs, config);
			double ratio = (dense < 0) ? Double.NaN : rate / median(rates[dense]);
			String kernels = "%s/%s".formatted(config.kernels().decode(), config.kernels().prefill()).toLowerCase();
			System.out.printf("%-8s %-24s %-8s %7d %5d %-14s %12.2f %10s%n", dtype, kernels, config.cache(),
					prompt.length, newTokens, config.label(), rate,
					Double.isNaN(ratio) ? "-" : "%.3fx".formatted(ratio));
			Map<String, Object> row = new LinkedHashMap<>();
			row.put("dtype", dtype);
			row.put("kernels", config.kernels().toString());
			row.put("cache", config.cache());
			row.put("density", config.density());
			row.put("method", config.method());
			row.put("promptTokens", prompt.length);
			row.put("newTokens", newTokens);
			row.put("decodeTokensPerSecond", rate);
			row.put("decodeRatioToDense", ratio);
			row.put("runs", rates[i]);
			rows.add(row);
		}
		return rows;
	}

	/**
	 * One lockstep run: a session per configuration prefilled with the prompt (its
	 * experts selected and gathered, as a lone stream's are), then {@code newTokens}
	 * greedy steps of each in turn; each configuration's summed step nanoseconds.
	 */
	private static long[] lockstepRun(List<Config> configs, int[] prompt, int newTokens) {
		int n = configs.size();
		InferenceSession[] sessions = new InferenceSession[n];
		long[] nanos = new long[n];
		int[] next = new int[n];
		try {
			for (int i = 0; i < n; i++) {
				sessions[i] = new InferenceSession(configs.get(i).model(), prompt.length + newTokens + 1);
				next[i] = Sampler.argmax(sessions[i].prefill(prompt, Generator.PREFILL_CHUNK));
				sessions[i].finishPrompt();
				sessions[i].gatherWeights();
			}
			for (int step = 0; step < newTokens; step++) {
				for (int i = 0; i < n; i++) {
					long start = System.nanoTime();
					float[] logits = sessions[i].decode(next[i]);
					nanos[i] += System.nanoTime() - start;
					next[i] = Sampler.argmax(logits);
				}
			}
		}
		finally {
			for (InferenceSession session : sessions) {
				if (session != null) {
					session.close();
				}
			}
		}
		return nanos;
	}

	/**
	 * Every density at every --batch size: sequences with prompts of their own (windows
	 * of the same prose) decode greedily together, one pass per step. Runs interleave the
	 * sizes and densities; only the decode steps are timed.
	 */
	private List<Map<String, Object>> measureBatches(LoadedModel loaded, List<Config> configs, String dtype,
			double machine) {
		List<Boolean> arenas = new ArrayList<>();
		for (String form : this.kv) {
			switch (form.trim()) {
				case "arena" -> arenas.add(true);
				case "own" -> arenas.add(false);
				default -> throw new CommandLine.ParameterException(new CommandLine(this),
						"--kv takes arena and/or own, got " + form);
			}
		}
		int forms = arenas.size();
		int n = configs.size() * forms; // every config in every KV form
		int sizes = this.batch.size();
		System.out.printf("%-8s %-24s %-8s %-6s %7s %5s %-14s %6s %16s %14s %10s %10s %10s %8s%n", "dtype", "kernels",
				"cache", "kv", "prompt", "new", "density", "batch", "aggregate t/s", "per-seq t/s", "step ms",
				"vs batch1", "GB/s", "of max");
		List<Map<String, Object>> rows = new ArrayList<>();
		for (int promptLength : this.promptTokens) {
			for (int newTokens : this.newTokens) {
				double[][][] aggregate = new double[n][sizes][this.runs];
				for (int r = -this.warmups; r < this.runs; r++) {
					for (int i = 0; i < n; i++) {
						for (int k = 0; k < sizes; k++) {
							double rate = batchRun(loaded, configs.get(i / forms).model(), arenas.get(i % forms),
									promptLength, sampling(newTokens), this.batch.get(k));
							if (r >= 0) {
								aggregate[i][k][r] = rate;
							}
						}
					}
				}
				for (int i = 0; i < n; i++) {
					Config config = configs.get(i / forms);
					String form = arenas.get(i % forms) ? "arena" : "own";
					double single = Double.NaN;
					for (int k = 0; k < sizes; k++) {
						if (this.batch.get(k) == 1) {
							single = median(aggregate[i][k]);
						}
					}
					for (int k = 0; k < sizes; k++) {
						int b = this.batch.get(k);
						double total = median(aggregate[i][k]);
						double ratio = total / single;
						long bytes = batchStepBytes(loaded.dense(), config.density(), b);
						double bandwidth = bytes * (total / b) / 1e9;
						String kernels = "%s/%s".formatted(config.kernels().decode(), config.kernels().prefill())
							.toLowerCase();
						System.out.printf(
								"%-8s %-24s %-8s %-6s %7d %5d %-14s %6d %16.2f %14.2f %10.1f %10s %10.2f %7.0f%%%n",
								dtype, kernels, config.cache(), form, promptLength, newTokens, config.label(), b, total,
								total / b, 1e3 * b / total, Double.isNaN(ratio) ? "-" : "%.2fx".formatted(ratio),
								bandwidth, 100 * bandwidth / machine);
						Map<String, Object> row = new LinkedHashMap<>();
						row.put("dtype", dtype);
						row.put("kernels", config.kernels().toString());
						row.put("cache", config.cache());
						row.put("kv", form);
						row.put("density", config.density());
						row.put("method", config.method());
						row.put("promptTokens", promptLength);
						row.put("newTokens", newTokens);
						row.put("batch", b);
						row.put("aggregateDecodeTokensPerSecond", total);
						row.put("perSequenceDecodeTokensPerSecond", total / b);
						row.put("ratioToBatch1", ratio);
						row.put("weightBytesPerStep", bytes);
						row.put("impliedBandwidthGBps", bandwidth);
						row.put("runs", aggregate[i][k]);
						rows.add(row);
					}
				}
			}
		}
		return rows;
	}

	/** Every decoded token's draw: --temperature, seeded, through the end tokens. */
	private SamplingParams sampling(int newTokens) {
		return new SamplingParams(this.temperature, 0, 1, 0, 1, 0, 0, 0L, newTokens, List.of(), List.of(), true);
	}

	/**
	 * One run of {@code b} sequences decoding {@code params.maxNewTokens()} tokens
	 * together, each drawn by a sampler of its own: aggregate decode tokens/s.
	 */
	private static double batchRun(LoadedModel loaded, CausalLm model, boolean inArena, int promptLength,
			SamplingParams params, int b) {
		int newTokens = params.maxNewTokens();
		Sampler[] samplers = new Sampler[b];
		List<InferenceSession> sessions = new ArrayList<>();
		KvArena arena = inArena ? new KvArena(model, b * (promptLength + newTokens + 1)) : null;
		try {
			int[] next = new int[b];
			for (int s = 0; s < b; s++) {
				int[] text = prompt(loaded, promptLength + 7 * s);
				int[] own = Arrays.copyOfRange(text, 7 * s, text.length);
				InferenceSession session = new InferenceSession(model, promptLength + newTokens + 1, 0, arena);
				if (session.inArena() != inArena) {
					session.close();
					throw new IllegalStateException("a sequence of the batch did not get the KV form asked for");
				}
				sessions.add(session);
				samplers[s] = new Sampler(params, model.config().vocabularySize(), own);
				next[s] = samplers[s].sample(session.prefill(own, Generator.PREFILL_CHUNK));
				session.finishPrompt();
			}
			long start = System.nanoTime();
			for (int step = 0; step < newTokens; step++) {
				float[][] logits = InferenceSession.decodeBatch(sessions, next);
				for (int s = 0; s < b; s++) {
					samplers[s].accept(next[s]);
					next[s] = samplers[s].sample(logits[s]);
				}
			}
			return (double) b * newTokens / ((System.nanoTime() - start) / 1e9);
		}
		finally {
			sessions.forEach(InferenceSession::close);
			if (arena != null) {
				arena.close();
			}
		}
	}

	/**
	 * Weights a batched decode step reads: everything but the feed-forward blocks once,
	 * then, for the feed-forward blocks, whichever the engine reads
	 * ({@code Kernels.masksDense}): each sequence's own experts one sequence after
	 * another, or the dense blocks once with each row masked to its experts when the
	 * sequences' experts together are at least as many as the block's neurons.
	 */
	static long batchStepBytes(CausalLm dense, double density, int batch) {
		long rest = bytesPerToken(dense, 0.0);
		long denseBlocks = bytesPerToken(dense, 1.0) - rest;
		// a dense batch (density 1) reads the dense blocks once: the minimum is theirs
		return rest + Math.min(denseBlocks, batch * (bytesPerToken(dense, density) - rest));
	}

	/** One measured configuration; {@code method} is "dense" at density 1. */
	private record Config(double density, String method, Kernels kernels, CausalLm model, Generator generator) {

		/** "dense", or the method and density ("glass 0.5"). */
		String label() {
			return (this.density == 1.0) ? "dense" : this.method + " " + this.density;
		}

		/** The KV cache's precision, float32 or float16. */
		String cache() {
			return this.model.options().cacheDataType().name().toLowerCase(Locale.ROOT);
		}

	}

	/**
	 * The index of the dense configuration that {@code config} compares with (the same
	 * kernels and cache), or -1 when none was measured.
	 */
	private static int dense(List<Config> configs, Config config) {
		int dense = -1;
		for (int j = 0; j < configs.size(); j++) {
			Config other = configs.get(j);
			if (other.density() == 1.0 && other.kernels().equals(config.kernels())
					&& other.cache().equals(config.cache())) {
				dense = j;
			}
		}
		return dense;
	}

	/**
	 * The KV cache precisions --kv-cache-dtypes names (null for the weights'); without
	 * it, one entry that the loaded model's own setting stands for.
	 */
	private List<ModelOptions.Precision> caches() {
		List<ModelOptions.Precision> caches = new ArrayList<>();
		if (this.kvCacheDtypes == null) {
			caches.add(null);
		}
		else {
			for (String name : this.kvCacheDtypes) {
				caches.add(ModelOptions.kvCache(name.trim()));
			}
		}
		return caches;
	}

	/** Exactly {@code promptTokens} tokens of English prose. */
	private static int[] prompt(LoadedModel loaded, int length) {
		StringBuilder text = new StringBuilder();
		int[] ids = new int[0];
		while (ids.length < length) {
			text.append(TEXT);
			ids = loaded.tokenizer().encode(text.toString());
		}
		return Arrays.copyOf(ids, length);
	}

	/**
	 * Weights a decode step reads: everything, less the feed-forward neurons GRIFFIN
	 * leaves out.
	 */
	static long bytesPerToken(CausalLm dense, double density) {
		ModelConfig c = dense.config();
		long dropped = (long) c.numberOfLayers() * c.feedForwardMatrices() * c.hiddenSize()
				* (c.intermediateSize() - (long) Math.floor(c.intermediateSize() * density));
		return dense.denseWeightBytesPerToken() - dropped * dense.options().dtype().bytes();
	}

	static double median(double[] values) {
		double[] sorted = values.clone();
		Arrays.sort(sorted);
		int n = sorted.length;
		return (n % 2 == 1) ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
	}

}

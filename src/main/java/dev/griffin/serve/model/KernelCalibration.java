package dev.griffin.serve.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.NDScope;
import ai.djl.ndarray.types.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Chooses a model's {@link Kernels} on the machine it runs on: each candidate form runs
 * the model's own passes (a decode step; on the CPU, a prompt chunk for float16 or
 * float32), interleaved so that drift affects every candidate alike, and the fastest
 * whose logits match libtorch's default form wins; the native prefill form also wins
 * within {@link #SHARED_PASS_MARGIN} of the fastest, since only its pass runs several
 * sequences' prompts together, and the native decode form within
 * {@link #BATCHED_STEP_MARGIN}, since its batched steps are the fastest. A form that
 * configuration names is used as it is.
 */
public final class KernelCalibration {

	private static final Logger logger = LoggerFactory.getLogger(KernelCalibration.class);

	/** Tokens of the prompt chunk a prefill form is timed on. */
	static final int PREFILL_TOKENS = 32;

	/** Interleaved rounds; each candidate's time is its median round. */
	private static final int ROUNDS = 3;

	/** Decode steps per round. */
	private static final int STEPS = 2;

	/**
	 * Largest difference from the default form's logits, relative to their largest
	 * magnitude, that a candidate may show: the forms only reorder sums.
	 */
	private static final double TOLERANCE = 1e-2;

	/**
	 * How much slower than the fastest prefill form the native one may be and still be
	 * chosen: its pass takes the prompts of several sequences at once (requests sent
	 * together read the weights once), which a one-sequence chunk does not time.
	 */
	static final double SHARED_PASS_MARGIN = 0.15;

	/**
	 * How much slower than the fastest decode form the native one may be and still be
	 * chosen: a lone sequence's step is what calibration times, but the native form also
	 * runs a batch's step in its own rows, while the other forms send a batch through
	 * oneDNN. SmolLM2 in float32, a step of 4 sequences: 23.1 ms native, 57.4 with the
	 * layer form on packed copies, 67.5 without (docs/results.md, "A load without copies
	 * nothing reads"), where a lone step of the 1.5B timed within 2% in the two forms.
	 */
	static final double BATCHED_STEP_MARGIN = 0.15;

	/**
	 * What calibration measured and chose.
	 *
	 * @param kernels the chosen forms
	 * @param decodeMillis median decode step per candidate form (empty when forced)
	 * @param prefillMillis median prompt chunk per candidate form (empty when forced or
	 * not applicable)
	 */
	public record Result(Kernels kernels, Map<Kernels.Decode, Double> decodeMillis,
			Map<Kernels.Prefill, Double> prefillMillis) {

		@Override
		public String toString() {
			StringBuilder text = new StringBuilder(this.kernels.toString());
			if (!this.decodeMillis.isEmpty()) {
				text.append("; decode step ms ")
					.append(format(this.decodeMillis))
					.append(kept(this.decodeMillis, this.kernels.decode(), BATCHED_STEP_MARGIN,
							"it runs a batch's step in its own rows"));
			}
			if (!this.prefillMillis.isEmpty()) {
				text.append("; %d-token prompt chunk ms ".formatted(PREFILL_TOKENS))
					.append(format(this.prefillMillis))
					.append(kept(this.prefillMillis, this.kernels.prefill(), SHARED_PASS_MARGIN,
							"its passes run several sequences' prompts"));
			}
			return text.toString();
		}

		/** Why {@code chosen} was kept though a form timed faster, or nothing. */
		private static <F extends Enum<F>> String kept(Map<F, Double> times, F chosen, double margin, String why) {
			Double time = times.get(chosen);
			if (time == null || times.values().stream().noneMatch((ms) -> ms < time)) {
				return "";
			}
			return " (%s kept within %.0f%% of the fastest: %s)".formatted(chosen.name().toLowerCase(), 100 * margin,
					why);
		}

		private static String format(Map<? extends Enum<?>, Double> times) {
			List<String> parts = new ArrayList<>();
			times.forEach((form, ms) -> parts.add("%s %.1f".formatted(form.name().toLowerCase(), ms)));
			return String.join(", ", parts);
		}

	}

	private KernelCalibration() {
	}

	/**
	 * The model with its kernels chosen.
	 * @param decode the decode form to use, or null to measure
	 * @param prefill the prefill form to use, or null to measure
	 */
	public static Result choose(CausalLm model, Kernels.Decode decode, Kernels.Prefill prefill) {
		int threads = model.kernels().threads();
		boolean cpu = model.options().device().equals("cpu");
		if (!cpu && (decode != null && decode != Kernels.Decode.POOL)) {
			throw new IllegalArgumentException(
					"decode kernel %s runs on the CPU only".formatted(decode.name().toLowerCase()));
		}
		if (prefill == Kernels.Prefill.BFLOAT16) {
			if (!cpu) {
				throw new IllegalArgumentException("prefill kernel bfloat16 runs on the CPU only");
			}
			ScriptedProducts.bfloat16(); // loads its module now: a problem shows at start
		}
		if (prefill == Kernels.Prefill.NATIVE && !cpu) {
			throw new IllegalArgumentException("prefill kernel native runs on the CPU only");
		}
		if ((decode == Kernels.Decode.NATIVE || prefill == Kernels.Prefill.NATIVE)
				&& NativeKernels.unavailable() != null) {
			throw new IllegalArgumentException("the native kernels cannot run here: " + NativeKernels.unavailable());
		}
		DataType weights = model.options().dtype().dataType();
		boolean oneDnn = model.options().oneDnnApplies();
		if (decode == Kernels.Decode.ONEDNN || prefill == Kernels.Prefill.ONEDNN) {
			if (!oneDnn) {
				throw new IllegalArgumentException("the onednn kernels run on the CPU with float32 weights only");
			}
			ScriptedProducts.oneDnn();
		}
		// oneDNN's forms multiply packed copies; without them it reorders every matrix at
		// every call. Where the native forms run, a load makes no copies unless a form
		// that reads them is named (ModelOptions.packsAtLoad), and calibration does not
		// time oneDNN's forms on plain matrices.
		boolean timeOneDnn = oneDnn && (model.kernels().packed().size() > 0 || NativeKernels.unavailable() != null);
		if (oneDnn && !timeOneDnn && (decode == null || prefill == null)) {
			logger.info("oneDNN's forms are left out: this load made no packed copies for them to read");
		}
		Map<Kernels.Decode, Double> decodeTimes = new LinkedHashMap<>();
		Map<Kernels.Prefill, Double> prefillTimes = new LinkedHashMap<>();
		Kernels.Decode chosenDecode = decode;
		Kernels.Prefill chosenPrefill = prefill;
		if (chosenDecode == null) {
			if (cpu) {
				List<Kernels.Decode> candidates = new ArrayList<>(List.of(Kernels.Decode.values()));
				if (Runtime.getRuntime().availableProcessors() < 2) {
					candidates.remove(Kernels.Decode.SPLIT);
				}
				if (!timeOneDnn) {
					candidates.remove(Kernels.Decode.ONEDNN);
				}
				if (NativeKernels.unavailable() != null) {
					logger.warn("decode kernel native is left out: {}", NativeKernels.unavailable());
					candidates.remove(Kernels.Decode.NATIVE);
				}
				chosenDecode = fastest(model, candidates, (form) -> new Kernels(form, Kernels.Prefill.WEIGHTS, threads),
						1, decodeTimes, Kernels.Decode.NATIVE, BATCHED_STEP_MARGIN);
			}
			else {
				chosenDecode = Kernels.Decode.POOL;
			}
		}
		if (chosenPrefill == null) {
			boolean half = weights == DataType.FLOAT16;
			if (cpu && (half || oneDnn)) {
				// float16: weights or widened to float32; float32: MKL's or oneDNN's
				List<Kernels.Prefill> candidates = Arrays.stream(Kernels.Prefill.values())
					.filter(Kernels.Prefill::exact)
					.filter((form) -> half ? form != Kernels.Prefill.ONEDNN : form != Kernels.Prefill.FLOAT32)
					.filter((form) -> form != Kernels.Prefill.ONEDNN || timeOneDnn)
					.filter((form) -> form != Kernels.Prefill.NATIVE || NativeKernels.unavailable() == null)
					.toList();
				chosenPrefill = fastest(model, candidates, (form) -> new Kernels(Kernels.Decode.POOL, form, threads),
						PREFILL_TOKENS, prefillTimes, Kernels.Prefill.NATIVE, SHARED_PASS_MARGIN);
			}
			else {
				chosenPrefill = Kernels.Prefill.WEIGHTS;
			}
		}
		Result result = new Result(new Kernels(chosenDecode, chosenPrefill, threads), decodeTimes, prefillTimes);
		logger.info("kernels: {}", result);
		return result;
	}

	/**
	 * The candidate whose pass of {@code tokens} tokens is fastest, among those whose
	 * logits match the first candidate's ({@link #pick}).
	 */
	private static <F extends Enum<F>> F fastest(CausalLm model, List<F> candidates,
			java.util.function.Function<F, Kernels> plan, int tokens, Map<F, Double> times, F preferred,
			double margin) {
		int n = candidates.size();
		CausalLm[] models = new CausalLm[n];
		for (int i = 0; i < n; i++) {
			models[i] = model.withKernels(plan.apply(candidates.get(i)));
		}
		int vocabulary = model.config().vocabularySize();
		int[] ids = new int[tokens];
		for (int i = 0; i < tokens; i++) {
			ids[i] = (7 + 13 * i) % vocabulary;
		}
		// a short context before the timed position, so that attention reads a cache
		int position = 16;
		double[][] millis = new double[n][ROUNDS];
		float[][] logits = new float[n][];
		try (NDManager manager = model.manager().newSubManager()) {
			KvCache cache = new KvCache(model.config(), position + tokens, manager, model.options().cacheDataType());
			NDArray context = manager.create(new long[position]);
			NDArray input = manager.create(Arrays.stream(ids).asLongStream().toArray());
			FeedForward.State[] states = model.newFeedForwardStates(0);
			run(models[0], context, 0, cache, states);
			for (int i = 0; i < n; i++) {
				logits[i] = run(models[i], input, position, cache, states); // and warm up
			}
			int repeats = (tokens == 1) ? STEPS : 1;
			for (int round = 0; round < ROUNDS; round++) {
				for (int i = 0; i < n; i++) {
					if (tokens == 1) {
						// one untimed step first: a form that follows another finds
						// libtorch's OpenMP threads asleep, which a steady decode never
						// does
						run(models[i], input, position, cache, states);
					}
					long start = System.nanoTime();
					for (int r = 0; r < repeats; r++) {
						run(models[i], input, position, cache, states);
					}
					millis[i][round] = (System.nanoTime() - start) / 1e6 / repeats;
				}
			}
		}
		finally {
			Kernels.useThreads(model.kernels().threads()); // as the thread was before
		}
		Map<F, Double> matching = new LinkedHashMap<>();
		for (int i = 0; i < n; i++) {
			double time = median(millis[i]);
			times.put(candidates.get(i), time);
			double difference = difference(logits[0], logits[i]);
			if (difference > TOLERANCE) {
				logger.warn("kernel form {} is left out: its logits differ from {}'s by {} (relative)",
						candidates.get(i), candidates.get(0), difference);
				continue;
			}
			matching.put(candidates.get(i), time);
		}
		return pick(matching, preferred, margin);
	}

	/**
	 * The fastest of the forms whose logits matched (never empty: the first candidate
	 * matches itself), or {@code preferred} where it matched and is at most
	 * {@code margin} slower than the fastest.
	 */
	static <F> F pick(Map<F, Double> times, F preferred, double margin) {
		F best = null;
		for (Map.Entry<F, Double> entry : times.entrySet()) {
			if (best == null || entry.getValue() < times.get(best)) {
				best = entry.getKey();
			}
		}
		Double preferredTime = (preferred != null) ? times.get(preferred) : null;
		if (preferredTime != null && preferredTime <= times.get(best) * (1 + margin)) {
			return preferred;
		}
		return best;
	}

	/**
	 * A pass as the engine runs it: one token in the generation phase, where the layer
	 * and native decode forms run a layer in one call, several as a prompt chunk.
	 */
	private static float[] run(CausalLm model, NDArray tokens, int position, KvCache cache,
			FeedForward.State[] states) {
		FeedForward.Phase phase = (tokens.getShape().get(0) == 1) ? FeedForward.Phase.GENERATION
				: FeedForward.Phase.PROMPT;
		try (NDScope scope = new NDScope()) {
			return model.forward(tokens, position, cache, phase, states, false).toFloatArray();
		}
	}

	/** max |a - b| / max |a|. */
	static double difference(float[] a, float[] b) {
		double largest = 0;
		double worst = 0;
		for (int i = 0; i < a.length; i++) {
			largest = Math.max(largest, Math.abs(a[i]));
			worst = Math.max(worst, Math.abs(a[i] - b[i]));
		}
		return (largest == 0) ? worst : worst / largest;
	}

	private static double median(double[] values) {
		double[] sorted = values.clone();
		Arrays.sort(sorted);
		return sorted[sorted.length / 2];
	}

}

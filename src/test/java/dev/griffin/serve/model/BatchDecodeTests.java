package dev.griffin.serve.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.GriffinFeedForward;
import dev.griffin.serve.griffin.GriffinState;
import dev.griffin.serve.griffin.GriffinTransform;
import dev.griffin.serve.griffin.SelectionMethod;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * A batched decode step against each sequence decoding alone, on the tiny checkpoints of
 * every architecture (the Mistral one's sliding window is shorter than its prompt) with
 * every decode form: sequences of unequal lengths, dense and GRIFFIN of two densities in
 * one batch (and a {@code delayed} one, whose first generated tokens are dense rows of
 * the batch in the native form and run alone as prompt tokens in the others), joining and
 * leaving between steps.
 */
class BatchDecodeTests {

	/**
	 * Steps each sequence decodes: a {@code delayed} sequence selects its experts after
	 * its first generated tokens and decodes a few more with them.
	 */
	private static final int STEPS = GriffinFeedForward.DELAY_TOKENS + 4;

	/**
	 * Largest |logit difference| between a batched step and the same step alone: a batch
	 * rounds its products as matrix products, a lone step as matrix-vector products.
	 */
	private static final double TOLERANCE = 1e-4;

	/**
	 * The same over a float16 KV cache, relative to the step's largest logit (at least
	 * 1): the batch's keys and values come from products summed in another order, and
	 * where two such sums lie on either side of a float16 rounding boundary the cache
	 * holds neighbouring float16 values (the largest difference measured: 1.03e-3,
	 * tiny-gemma3).
	 */
	private static final double HALF_TOLERANCE = 2e-3;

	static Stream<Arguments> everyDecodeForm() {
		List<Arguments> cases = new ArrayList<>();
		for (String name : TinyModelGoldenTests.CHECKPOINTS) {
			for (Kernels.Decode decode : Kernels.Decode.values()) {
				cases.add(Arguments.of(name, decode, true));
				cases.add(Arguments.of(name, decode, false));
			}
		}
		return cases.stream();
	}

	/**
	 * {@link #everyDecodeForm}, each with a float32 and a float16 KV cache beside the
	 * float32 weights.
	 */
	static Stream<Arguments> everyDecodeFormAndCache() {
		return everyDecodeForm()
			.flatMap((form) -> Stream.of(ModelOptions.Precision.FLOAT32, ModelOptions.Precision.FLOAT16)
				.map((cache) -> Arguments.of(form.get()[0], form.get()[1], form.get()[2], cache)));
	}

	/** A sequence of the test: its model variant, prompt and when it joins the batch. */
	private record Run(CausalLm model, int[] prompt, int joinsAt) {

	}

	@ParameterizedTest(name = "{0} {1} arena={2} cache={3}")
	@MethodSource("everyDecodeFormAndCache")
	void batchedStepsMatchEachSequenceAlone(String name, Kernels.Decode decode, boolean inArena,
			ModelOptions.Precision cache) {
		CausalLm dense = load(name, decode).withKvCache(cache);
		int layers = dense.config().numberOfLayers();
		CausalLm half = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.TOPK);
		CausalLm quarter = GriffinTransform.apply(dense, DensitySchedule.uniform(0.25, layers), SelectionMethod.TOPK);
		int[] prompt = Fixtures.ints(Fixtures.json(name + "/reference.json").get("prompt"));
		int[] reversed = new int[prompt.length - 3];
		for (int i = 0; i < reversed.length; i++) {
			reversed[i] = prompt[prompt.length - 1 - i];
		}
		CausalLm delayed = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.DELAYED);
		List<Run> runs = List.of(new Run(dense, prompt, 0), new Run(half, Arrays.copyOf(prompt, 5), 0),
				new Run(quarter, reversed, 2), new Run(dense, Arrays.copyOf(prompt, 2), 3), new Run(half, prompt, 5),
				new Run(delayed, Arrays.copyOf(prompt, 4), 1));
		try {
			// alone: each sequence's greedy tokens and the logits that chose them
			List<float[][]> alone = new ArrayList<>();
			List<int[]> aloneTokens = new ArrayList<>();
			for (Run run : runs) {
				float[][] logits = new float[STEPS + 1][];
				int[] tokens = new int[STEPS + 1];
				try (InferenceSession session = new InferenceSession(run.model(), 64)) {
					logits[0] = session.prefill(run.prompt(), run.prompt().length);
					for (int step = 0; step < STEPS; step++) {
						tokens[step] = TinyModelGoldenTests.argmax(logits[step]);
						logits[step + 1] = session.decode(tokens[step]);
					}
					tokens[STEPS] = TinyModelGoldenTests.argmax(logits[STEPS]);
				}
				alone.add(logits);
				aloneTokens.add(tokens);
			}
			// together: sequence i joins at step joinsAt (its prompt runs alone) and
			// leaves after STEPS steps of its own
			// in an arena the batch attends in its gathered form; each range is followed
			// by another's, so a row that read past its own window would see its
			// neighbour
			KvArena arena = inArena ? new KvArena(dense, runs.size() * 64) : null;
			InferenceSession[] sessions = new InferenceSession[runs.size()];
			float[][] last = new float[runs.size()][];
			int[] done = new int[runs.size()];
			double worst = 0;
			double worstRelative = 0;
			int batches = 0;
			try {
				for (int step = 0; step < STEPS + runs.size(); step++) {
					List<InferenceSession> batch = new ArrayList<>();
					List<Integer> members = new ArrayList<>();
					for (int i = 0; i < runs.size(); i++) {
						Run run = runs.get(i);
						if (step == run.joinsAt()) {
							sessions[i] = new InferenceSession(run.model(), 64, 0, arena);
							assertThat(sessions[i].inArena()).isEqualTo(inArena);
							last[i] = sessions[i].prefill(run.prompt(), run.prompt().length);
						}
						if (sessions[i] != null && done[i] < STEPS) {
							batch.add(sessions[i]);
							members.add(i);
						}
					}
					if (batch.isEmpty()) {
						continue;
					}
					int[] tokens = new int[batch.size()];
					for (int j = 0; j < tokens.length; j++) {
						tokens[j] = TinyModelGoldenTests.argmax(last[members.get(j)]);
					}
					float[][] logits = InferenceSession.decodeBatch(batch, tokens);
					batches += (batch.size() > 1) ? 1 : 0;
					for (int j = 0; j < tokens.length; j++) {
						int i = members.get(j);
						assertThat(tokens[j]).as("sequence %d token %d", i, done[i])
							.isEqualTo(aloneTokens.get(i)[done[i]]);
						done[i]++;
						last[i] = logits[j];
						float[] want = alone.get(i)[done[i]];
						worst = Math.max(worst, maxDifference(logits[j], want));
						worstRelative = Math.max(worstRelative,
								maxDifference(logits[j], want) / Math.max(1, largest(want)));
					}
				}
			}
			finally {
				for (InferenceSession session : sessions) {
					if (session != null) {
						session.close();
					}
				}
				if (arena != null) {
					assertThat(arena.freeTokens()).as("arena tokens free once every sequence is done")
						.isEqualTo(arena.tokens());
					arena.close();
				}
			}
			assertThat(done).as("steps each sequence decoded").containsOnly(STEPS);
			assertThat(batches).as("steps that ran several sequences").isGreaterThanOrEqualTo(STEPS);
			if (cache == ModelOptions.Precision.FLOAT32) {
				assertThat(worst).as("max |logit difference|, batched against alone").isLessThanOrEqualTo(TOLERANCE);
			}
			else {
				assertThat(worstRelative).as("max |logit difference| relative to the largest, batched against alone")
					.isLessThanOrEqualTo(HALF_TOLERANCE);
			}
		}
		finally {
			dense.close();
		}
	}

	/**
	 * A sequence that runs alone decodes one token at a time even when its cache is a
	 * range of an arena (the engine's lone stream): the range after another sequence's
	 * gives the same logits as a cache of its own, dense and GRIFFIN, in every decode
	 * form (the native layer writes and reads the arena's memory at the range's offset).
	 */
	@ParameterizedTest(name = "{0} {1} griffin={2}")
	@MethodSource("everyDecodeForm")
	void aLoneSequenceInAnArenaDecodesAsWithItsOwnCache(String name, Kernels.Decode decode, boolean griffin) {
		CausalLm dense = load(name, decode);
		CausalLm model = griffin ? GriffinTransform.apply(dense,
				DensitySchedule.uniform(0.5, dense.config().numberOfLayers()), SelectionMethod.TOPK) : dense;
		int[] prompt = Fixtures.ints(Fixtures.json(name + "/reference.json").get("prompt"));
		try (KvArena arena = new KvArena(dense, 2 * 64);
				InferenceSession before = new InferenceSession(model, 64, 0, arena);
				InferenceSession ranged = new InferenceSession(model, 64, 0, arena);
				InferenceSession own = new InferenceSession(model, 64)) {
			assertThat(ranged.inArena()).isTrue();
			before.prefill(Arrays.copyOf(prompt, 3), 3);
			float[] inArena = ranged.prefill(prompt, prompt.length);
			float[] alone = own.prefill(prompt, prompt.length);
			double worst = maxDifference(inArena, alone);
			for (int step = 0; step < STEPS; step++) {
				int token = TinyModelGoldenTests.argmax(alone);
				assertThat(TinyModelGoldenTests.argmax(inArena)).as("token %d", step).isEqualTo(token);
				inArena = ranged.decode(token);
				alone = own.decode(token);
				worst = Math.max(worst, maxDifference(inArena, alone));
			}
			assertThat(worst).as("max |logit difference|, arena range against own cache")
				.isLessThanOrEqualTo(TOLERANCE);
		}
		finally {
			dense.close();
		}
	}

	/**
	 * Both forms of a batch's GRIFFIN feed-forward block give each row what its gathered
	 * experts give alone: the per-row form (two GRIFFIN rows whose densities sum below 1)
	 * and the masked dense form (densities summing to 1 or more, or a dense row in the
	 * batch).
	 */
	@Test
	void maskedAndPerRowFormsEqualTheGatheredForm() {
		CausalLm dense = load("tiny-llama", Kernels.Decode.SINGLE);
		int layers = dense.config().numberOfLayers();
		CausalLm half = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.TOPK);
		CausalLm quarter = GriffinTransform.apply(dense, DensitySchedule.uniform(0.25, layers), SelectionMethod.TOPK);
		int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
		int neurons = dense.config().intermediateSize();
		try {
			for (List<CausalLm> models : List.of(List.of(half, quarter), List.of(half, half, quarter),
					List.of(quarter, dense))) {
				List<InferenceSession> batch = new ArrayList<>();
				List<InferenceSession> alone = new ArrayList<>();
				try {
					float[][] last = prefillEach(models, prompt, batch, alone);
					Kernels.BlockWeights[] rows = new Kernels.BlockWeights[models.size()];
					for (int i = 0; i < rows.length; i++) {
						rows[i] = batch.get(i).state(0).generationWeights();
					}
					boolean masked = models.contains(dense) || models.size() == 3;
					assertThat(Kernels.masksDense(rows, neurons)).as("%d rows", rows.length).isEqualTo(masked);
					for (int step = 0; step < STEPS; step++) {
						int[] tokens = new int[models.size()];
						for (int i = 0; i < tokens.length; i++) {
							tokens[i] = TinyModelGoldenTests.argmax(last[i]);
						}
						last = InferenceSession.decodeBatch(batch, tokens);
						for (int i = 0; i < tokens.length; i++) {
							float[] lone = alone.get(i).decode(tokens[i]);
							assertThat(maxDifference(last[i], lone)).as("row %d step %d", i, step)
								.isLessThanOrEqualTo(TOLERANCE);
							assertThat(TinyModelGoldenTests.argmax(last[i]))
								.isEqualTo(TinyModelGoldenTests.argmax(lone));
						}
					}
					// the masked form reads the experts' indices only, so nothing is
					// gathered; the per-row form and a lone sequence gather their own
					for (int i = 0; i < models.size(); i++) {
						if (models.get(i) == dense) {
							continue;
						}
						for (int layer = 0; layer < layers; layer++) {
							assertThat(((GriffinState) batch.get(i).state(layer)).experts().gathered())
								.as("%d rows, row %d, layer %d", rows.length, i, layer)
								.isEqualTo(!masked);
							assertThat(((GriffinState) alone.get(i).state(layer)).experts().gathered()).isTrue();
						}
					}
				}
				finally {
					batch.forEach(InferenceSession::close);
					alone.forEach(InferenceSession::close);
				}
			}
		}
		finally {
			dense.close();
		}
	}

	/**
	 * With float16 weights and the native form, a batch of a dense row and a GRIFFIN row
	 * (the masked dense form) runs each layer as one native call for both rows: each
	 * row's logits stay within float16's rounding (2e-3 of their range) of its lone
	 * steps', in every plain architecture's fixture.
	 */
	@ParameterizedTest
	@MethodSource("plainCheckpoints")
	void aNativeFloat16BatchKeepsEachRowsLogits(String name) {
		CausalLm loaded = TinyModelGoldenTests.load(name, new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu"),
				NDManager.newBaseManager());
		CausalLm dense = loaded
			.withKernels(new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.WEIGHTS, loaded.kernels().threads()));
		int layers = dense.config().numberOfLayers();
		List<CausalLm> models = List.of(dense,
				GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.TOPK));
		int[] prompt = Fixtures.ints(Fixtures.json(name + "/reference.json").get("prompt"));
		List<InferenceSession> batch = new ArrayList<>();
		List<InferenceSession> alone = new ArrayList<>();
		try {
			decodeTwoWithinHalfRounding(prefillEach(models, prompt, batch, alone), batch, alone);
		}
		finally {
			batch.forEach(InferenceSession::close);
			alone.forEach(InferenceSession::close);
			dense.close();
		}
	}

	static Stream<Arguments> plainCheckpointsInBothPrecisions() {
		return plainCheckpoints().flatMap((name) -> Stream.of(Arguments.of(name, ModelOptions.Precision.FLOAT32),
				Arguments.of(name, ModelOptions.Precision.FLOAT16)));
	}

	/**
	 * Prompts in the native prefill form run together, in one pass per chunk: dense and
	 * GRIFFIN sequences, prompts of unequal lengths (one token among them; in two chunks,
	 * the second at later positions), in caches of their own or an arena's ranges. Each
	 * sequence's logits after its chunk stay within rounding (1e-4 in float32, 2e-3 of
	 * their range in float16) of its prompt run alone, and it then decodes the same
	 * greedy tokens with the same logits: its keys and values went into its own cache,
	 * and a GRIFFIN sequence selected its experts from its own tokens' statistic. A
	 * sequence whose model prefills in another form cannot join such a pass.
	 */
	@ParameterizedTest(name = "{0} {1}")
	@MethodSource("plainCheckpointsInBothPrecisions")
	void promptsOfSeveralSequencesInOnePassMatchEachAlone(String name, ModelOptions.Precision precision) {
		CausalLm loaded = TinyModelGoldenTests.load(name, new ModelOptions(precision, "cpu"),
				NDManager.newBaseManager());
		CausalLm dense = loaded
			.withKernels(new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.NATIVE, loaded.kernels().threads()));
		int[] prompt = Fixtures.ints(Fixtures.json(name + "/reference.json").get("prompt"));
		int[] reversed = new int[prompt.length - 2];
		for (int i = 0; i < reversed.length; i++) {
			reversed[i] = prompt[prompt.length - 1 - i];
		}
		List<int[]> prompts = List.of(prompt, Arrays.copyOf(prompt, 5), new int[] { prompt[3] }, reversed,
				Arrays.copyOf(prompt, 7));
		CausalLm half = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, dense.config().numberOfLayers()),
				SelectionMethod.TOPK);
		// the one-token prompt is dense: alone it takes libtorch's path (the native call
		// takes two rows or more), and in float16 one token's statistic can rank
		// near-tied neurons the other way there
		List<CausalLm> models = List.of(dense, half, dense, dense, half);
		int split = 3; // the chunks: tokens [0, split) of each, then the rest
		KvArena arena = new KvArena(dense, prompts.size() * 64);
		List<InferenceSession> together = new ArrayList<>();
		try {
			for (int i = 0; i < prompts.size(); i++) {
				together.add(new InferenceSession(models.get(i), 64, 0, (i % 2 == 0) ? arena : null));
			}
			List<int[]> firsts = new ArrayList<>();
			List<int[]> rests = new ArrayList<>();
			List<InferenceSession> second = new ArrayList<>();
			for (int i = 0; i < prompts.size(); i++) {
				int[] own = prompts.get(i);
				assertThat(together.get(i).prefillsTogether()).isTrue();
				firsts.add(Arrays.copyOf(own, Math.min(split, own.length)));
				if (own.length > split) {
					rests.add(Arrays.copyOfRange(own, split, own.length));
					second.add(together.get(i));
				}
			}
			float[][] last = InferenceSession.prefillBatch(together, firsts);
			float[][] after = InferenceSession.prefillBatch(second, rests);
			for (int i = 0, j = 0; i < prompts.size(); i++) {
				if (prompts.get(i).length > split) {
					last[i] = after[j++];
				}
			}
			double worst = 0;
			for (int i = 0; i < prompts.size(); i++) {
				int[] own = prompts.get(i);
				try (InferenceSession alone = new InferenceSession(models.get(i), 64)) {
					float[] want = alone.prefill(own, own.length);
					float[] got = last[i];
					worst = Math.max(worst, beyond(precision, got, want));
					for (int step = 0; step < 4; step++) {
						int token = TinyModelGoldenTests.argmax(want);
						assertThat(TinyModelGoldenTests.argmax(got)).as("sequence %d token %d", i, step)
							.isEqualTo(token);
						want = alone.decode(token);
						got = together.get(i).decode(token);
						worst = Math.max(worst, beyond(precision, got, want));
					}
				}
			}
			assertThat(worst).as("max |logit difference| over what is allowed").isLessThanOrEqualTo(1.0);
			CausalLm other = dense
				.withKernels(new Kernels(Kernels.Decode.NATIVE, Kernels.Prefill.WEIGHTS, dense.kernels().threads()));
			try (InferenceSession apart = new InferenceSession(other, 64)) {
				assertThat(apart.prefillsTogether()).isFalse();
				assertThatThrownBy(() -> InferenceSession.prefillBatch(List.of(apart), List.of(prompt)))
					.isInstanceOf(IllegalArgumentException.class)
					.hasMessageContaining("cannot share a pass");
			}
		}
		finally {
			together.forEach(InferenceSession::close);
			arena.close();
			dense.close();
		}
	}

	/**
	 * How far logits are apart, as a fraction of what rounding allows: 1e-4 in float32,
	 * 2e-3 of their range in float16.
	 */
	private static double beyond(ModelOptions.Precision precision, float[] got, float[] want) {
		return (precision == ModelOptions.Precision.FLOAT32) ? maxDifference(got, want) / TOLERANCE
				: KernelCalibration.difference(want, got) / 2e-3;
	}

	static Stream<String> plainCheckpoints() {
		return Stream.of("tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-relu-llama");
	}

	/**
	 * With float16 weights packed for the layer form, a batch's per-row form multiplies
	 * each GRIFFIN row by its experts' packed copies, as the row's lone steps do: the
	 * logits stay within float16's rounding (2e-3 of their range) of the lone steps', and
	 * each row holds its experts packed.
	 */
	@Test
	void perRowFormReadsPackedFloat16Experts() {
		CausalLm loaded = TinyModelGoldenTests.load("tiny-llama",
				new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu").withPackWeights(true),
				NDManager.newBaseManager());
		CausalLm dense = loaded
			.withKernels(new Kernels(Kernels.Decode.LAYER, Kernels.Prefill.WEIGHTS, loaded.kernels().threads()));
		int layers = dense.config().numberOfLayers();
		List<CausalLm> models = List.of(
				GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, layers), SelectionMethod.TOPK),
				GriffinTransform.apply(dense, DensitySchedule.uniform(0.25, layers), SelectionMethod.TOPK));
		int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
		List<InferenceSession> batch = new ArrayList<>();
		List<InferenceSession> alone = new ArrayList<>();
		try {
			// oneDNN packs float16 on CPUs with AVX-512 only; elsewhere every row reads
			// plain weights, and the outputs must agree all the same
			boolean halves = PackedWeights.packsHalf();
			assertThat(dense.kernels().packed().size() > 0).as("packed float16 copies").isEqualTo(halves);
			float[][] last = prefillEach(models, prompt, batch, alone);
			Kernels.BlockWeights[] rows = { batch.get(0).state(0).generationWeights(),
					batch.get(1).state(0).generationWeights() };
			assertThat(Kernels.masksDense(rows, dense.config().intermediateSize())).as("per-row form").isFalse();
			decodeTwoWithinHalfRounding(last, batch, alone);
			for (InferenceSession session : batch) {
				for (int layer = 0; layer < layers; layer++) {
					assertThat(((GriffinState) session.state(layer)).experts().packed()).as("layer %d", layer)
						.isEqualTo(halves);
				}
			}
		}
		finally {
			batch.forEach(InferenceSession::close);
			alone.forEach(InferenceSession::close);
			dense.close();
		}
	}

	/**
	 * A batch's rows are one-token products: with the bfloat16 prompt form configured
	 * they, and the head, still compute in the weights' precision (a prompt form would
	 * move the logits by about 1e-2).
	 */
	@Test
	void aBatchNeverTakesARoundingPromptForm() {
		CausalLm model = load("tiny-llama", Kernels.Decode.SINGLE);
		CausalLm rounding = model.withKernels(new Kernels(Kernels.Decode.SINGLE, Kernels.Prefill.BFLOAT16, 1));
		int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
		try (InferenceSession a = new InferenceSession(rounding, 64);
				InferenceSession b = new InferenceSession(rounding, 64);
				InferenceSession alone = new InferenceSession(rounding, 64)) {
			float[] first = a.prefill(prompt, prompt.length);
			b.prefill(Arrays.copyOf(prompt, 6), 6);
			assertThat(maxDifference(first, alone.prefill(prompt, prompt.length))).isZero();
			int token = TinyModelGoldenTests.argmax(first);
			for (int step = 0; step < 4; step++) {
				float[][] batched = InferenceSession.decodeBatch(List.of(a, b), new int[] { token, token });
				float[] lone = alone.decode(token);
				assertThat(maxDifference(batched[0], lone)).as("step %d", step).isLessThanOrEqualTo(TOLERANCE);
				token = TinyModelGoldenTests.argmax(lone);
			}
		}
		finally {
			model.close();
		}
	}

	@Test
	void refusesWhatCannotShareAPass() {
		CausalLm one = load("tiny-llama", Kernels.Decode.SINGLE);
		CausalLm other = load("tiny-llama", Kernels.Decode.SINGLE);
		int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
		try (InferenceSession a = new InferenceSession(one, 64);
				InferenceSession b = new InferenceSession(other, 64);
				InferenceSession small = new InferenceSession(one, prompt.length)) {
			a.prefill(prompt, prompt.length);
			b.prefill(prompt, prompt.length);
			small.prefill(prompt, prompt.length);
			assertThatThrownBy(() -> InferenceSession.decodeBatch(List.of(a, b), new int[] { 1, 1 }))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("different models");
			assertThatThrownBy(() -> InferenceSession.decodeBatch(List.of(a, a), new int[] { 1, 1 }))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("twice");
			assertThatThrownBy(() -> InferenceSession.decodeBatch(List.of(a), new int[] { 1, 1 }))
				.isInstanceOf(IllegalArgumentException.class);
			int vocabulary = one.config().vocabularySize();
			assertThatThrownBy(() -> InferenceSession.decodeBatch(List.of(a), new int[] { vocabulary }))
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("outside the vocabulary");
			assertThatThrownBy(() -> InferenceSession.decodeBatch(List.of(a, small), new int[] { 1, 1 }))
				.isInstanceOf(IllegalStateException.class)
				.hasMessageContaining("capacity");
			// nothing ran: the next step of a still matches a lone step from the prompt
			float[] batched = InferenceSession.decodeBatch(List.of(a), new int[] { 1 })[0];
			float[] lone = b.decode(1);
			assertThat(maxDifference(batched, lone)).isLessThanOrEqualTo(TOLERANCE);
		}
		finally {
			one.close();
			other.close();
		}
	}

	static Stream<Kernels.Decode> decodeForms() {
		return Stream.of(Kernels.Decode.values());
	}

	/**
	 * A feed-forward block that is not {@link FeedForward#fusable} (here one that counts
	 * the tokens it sees, as the flocking analysis records them) sees every generated
	 * token, alone and in a batch, in every decode form: no fused layer computes its
	 * product behind its back.
	 */
	@ParameterizedTest(name = "{0}")
	@MethodSource("decodeForms")
	void aBlockThatIsNotFusableSeesEveryToken(Kernels.Decode decode) {
		CausalLm dense = load("tiny-llama", decode);
		int[] seen = new int[dense.config().numberOfLayers()];
		CausalLm counting = dense.withFeedForwards((layer, block) -> new FeedForward() {

			@Override
			public Weights weights() {
				return block.weights();
			}

			@Override
			public NDArray forward(NDArray x, Phase phase, State state, Kernels kernels) {
				seen[layer] += (int) x.getShape().get(0);
				return block.forward(x, phase, state, kernels);
			}

		});
		int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
		try (InferenceSession lone = new InferenceSession(counting, 64);
				InferenceSession a = new InferenceSession(counting, 64);
				InferenceSession b = new InferenceSession(counting, 64);
				InferenceSession reference = new InferenceSession(dense, 64)) {
			float[] first = lone.prefill(prompt, prompt.length);
			a.prefill(prompt, prompt.length);
			b.prefill(Arrays.copyOf(prompt, 5), 5);
			assertThat(reference.prefill(prompt, prompt.length)).containsExactly(first);
			int token = TinyModelGoldenTests.argmax(first);
			for (int step = 0; step < 4; step++) {
				float[] expected = reference.decode(token);
				assertThat(maxDifference(lone.decode(token), expected)).as("alone, step %d", step)
					.isLessThanOrEqualTo(TOLERANCE);
				float[][] batched = InferenceSession.decodeBatch(List.of(a, b), new int[] { token, token });
				assertThat(maxDifference(batched[0], expected)).as("batched, step %d", step)
					.isLessThanOrEqualTo(TOLERANCE);
				token = TinyModelGoldenTests.argmax(expected);
			}
			// three prompts, then 4 steps alone and 4 batched steps of two rows
			assertThat(seen).containsOnly(2 * prompt.length + 5 + 4 + 4 * 2);
		}
		finally {
			dense.close();
		}
	}

	/** A tiny model that owns its weights (closing it frees them). */
	private static CausalLm load(String name, Kernels.Decode decode) {
		CausalLm model = TinyModelGoldenTests.load(name, ModelOptions.CPU_FLOAT32, NDManager.newBaseManager());
		return model.withKernels(new Kernels(decode, Kernels.Prefill.WEIGHTS, model.kernels().threads()));
	}

	/**
	 * Opens two sessions of each model, one to decode in a batch and one alone, and runs
	 * the prompt less its last i tokens through both (model i); the batch's prompts are
	 * finished.
	 * @return each batch session's last prompt logits
	 */
	private static float[][] prefillEach(List<CausalLm> models, int[] prompt, List<InferenceSession> batch,
			List<InferenceSession> alone) {
		float[][] last = new float[models.size()][];
		for (int i = 0; i < models.size(); i++) {
			int[] own = Arrays.copyOf(prompt, prompt.length - i);
			batch.add(new InferenceSession(models.get(i), 64));
			alone.add(new InferenceSession(models.get(i), 64));
			last[i] = batch.get(i).prefill(own, own.length);
			batch.get(i).finishPrompt();
			alone.get(i).prefill(own, own.length);
		}
		return last;
	}

	/**
	 * Decodes two batch rows greedily for {@link #STEPS} steps from their last logits,
	 * each step beside the rows' lone sessions: every row's logits stay within float16's
	 * rounding (2e-3 of their range) of its lone step's.
	 */
	private static void decodeTwoWithinHalfRounding(float[][] last, List<InferenceSession> batch,
			List<InferenceSession> alone) {
		for (int step = 0; step < STEPS; step++) {
			int[] tokens = { TinyModelGoldenTests.argmax(last[0]), TinyModelGoldenTests.argmax(last[1]) };
			last = InferenceSession.decodeBatch(batch, tokens);
			for (int i = 0; i < tokens.length; i++) {
				assertThat(KernelCalibration.difference(alone.get(i).decode(tokens[i]), last[i]))
					.as("row %d step %d", i, step)
					.isLessThanOrEqualTo(2e-3);
			}
		}
	}

	private static double largest(float[] values) {
		double largest = 0;
		for (float value : values) {
			largest = Math.max(largest, Math.abs(value));
		}
		return largest;
	}

	private static double maxDifference(float[] a, float[] b) {
		double worst = 0;
		for (int i = 0; i < a.length; i++) {
			worst = Math.max(worst, Math.abs(a[i] - b[i]));
		}
		return worst;
	}

}

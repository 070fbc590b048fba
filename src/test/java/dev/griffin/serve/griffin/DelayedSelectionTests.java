package dev.griffin.serve.griffin;

import java.util.Arrays;
import java.util.List;

import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.generation.PromptCache;
import dev.griffin.serve.generation.Sampler;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.Kernels;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/**
 * {@code delayed}: the first generated tokens run the full model and join the statistic,
 * weighted to hold {@link GriffinFeedForward#REPLY_SHARE} of it, and only then are the
 * experts selected; a prompt cache entry keeps the prompt's statistic.
 */
class DelayedSelectionTests {

	private static final int R = GriffinFeedForward.DELAY_TOKENS;

	private static NDManager manager;

	private static CausalLm dense;

	private static int[] prompt;

	@BeforeAll
	static void load() {
		manager = NDManager.newBaseManager();
		dense = Fixtures.tinyModel("tiny-llama", ModelOptions.CPU_FLOAT32, manager);
		prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
	}

	@AfterAll
	static void close() {
		manager.close();
	}

	private static CausalLm variant(SelectionMethod method) {
		return variant(dense, method);
	}

	private static CausalLm variant(CausalLm model, SelectionMethod method) {
		return GriffinTransform.apply(model, DensitySchedule.uniform(0.5, model.config().numberOfLayers()), method);
	}

	/**
	 * In both prompt forms: the generated tokens a delayed selection records run as
	 * one-token prompt passes, through the native layer call in its form.
	 */
	@ParameterizedTest(name = "{0}")
	@EnumSource(value = Kernels.Prefill.class, names = { "WEIGHTS", "NATIVE" })
	void theFirstGeneratedTokensRunTheFullModelThenTopkOfTheBlendedStatistic(Kernels.Prefill form) {
		CausalLm dense = DelayedSelectionTests.dense.withKernels(new Kernels(Kernels.Decode.SINGLE, form, 1));
		int layers = dense.config().numberOfLayers();
		int f = dense.config().intermediateSize();
		int k = DensitySchedule.uniform(0.5, layers).experts(0, f);
		int[] reply = reply(dense, 7, 31);
		try (InferenceSession delayed = new InferenceSession(variant(dense, SelectionMethod.DELAYED), 64);
				InferenceSession full = new InferenceSession(dense, 64);
				InferenceSession promptOnly = new InferenceSession(variant(dense, SelectionMethod.TOPK), 64);
				InferenceSession withReply = new InferenceSession(variant(dense, SelectionMethod.TOPK), 64)) {
			delayed.prefill(prompt, 5);
			full.prefill(prompt, prompt.length);
			promptOnly.prefill(prompt, prompt.length);
			withReply.prefill(prompt, prompt.length);
			withReply.prefill(Arrays.copyOf(reply, R), 1);
			for (int i = 0; i < R; i++) {
				for (int layer = 0; layer < layers; layer++) {
					assertThat(((GriffinState) delayed.state(layer)).experts()).as("token %d, layer %d", i, layer)
						.isNull();
				}
				float[] got = delayed.decode(reply[i]);
				float[] want = full.decode(reply[i]);
				for (int v = 0; v < want.length; v++) {
					assertThat(got[v]).as("token %d: the full model's logits", i).isCloseTo(want[v], within(1e-4f));
				}
			}
			for (int layer = 0; layer < layers; layer++) {
				double[] promptSquares = ((GriffinState) promptOnly.state(layer)).promptStatistic();
				double[] all = ((GriffinState) withReply.state(layer)).promptStatistic();
				double promptMass = 0;
				double replyMass = 0;
				double[] replySquares = new double[f];
				for (int j = 0; j < f; j++) {
					replySquares[j] = all[j] - promptSquares[j];
					promptMass += promptSquares[j];
					replyMass += replySquares[j];
				}
				// each token's normalised activations hold 1 of the statistic
				assertThat(promptMass).as("layer %d prompt mass", layer).isCloseTo(prompt.length, within(1e-6));
				assertThat(replyMass).as("layer %d reply mass", layer).isCloseTo(R, within(1e-6));
				double weight = Math.max(1,
						GriffinFeedForward.REPLY_SHARE / (1 - GriffinFeedForward.REPLY_SHARE) * promptMass / replyMass);
				double[] scores = new double[f];
				for (int j = 0; j < f; j++) {
					scores[j] = promptSquares[j] + weight * replySquares[j];
				}
				int[] expected = ExpertSelector.top(scores, k);
				Arrays.sort(expected);
				assertThat(((GriffinState) delayed.state(layer)).experts().indices()).as("layer %d", layer)
					.containsExactly(expected);
				assertThat(expected).as("layer %d: the reply changes the choice", layer)
					.isNotEqualTo(sorted(ExpertSelector.top(promptSquares, k)));
			}
			// after selection a step reads the experts, not the full model
			float[] got = delayed.decode(reply[R]);
			float[] want = full.decode(reply[R]);
			assertThat(maxDifference(got, want)).isGreaterThan(1e-3);
		}
	}

	/**
	 * {@code dense_start}: the first generated tokens run the full model too, and then
	 * generation reads the experts {@code topk} selects from the prompt alone.
	 */
	@ParameterizedTest(name = "{0}")
	@EnumSource(value = Kernels.Prefill.class, names = { "WEIGHTS", "NATIVE" })
	void aDenseStartRunsTheFullModelThenTopkOfThePromptAlone(Kernels.Prefill form) {
		CausalLm dense = DelayedSelectionTests.dense.withKernels(new Kernels(Kernels.Decode.SINGLE, form, 1));
		int layers = dense.config().numberOfLayers();
		int[] reply = reply(dense, 11, 37);
		try (InferenceSession start = new InferenceSession(variant(dense, SelectionMethod.DENSE_START), 64);
				InferenceSession full = new InferenceSession(dense, 64);
				InferenceSession topk = new InferenceSession(variant(dense, SelectionMethod.TOPK), 64);
				InferenceSession delayed = new InferenceSession(variant(dense, SelectionMethod.DELAYED), 64)) {
			start.prefill(prompt, 5);
			full.prefill(prompt, prompt.length);
			topk.prefill(prompt, prompt.length);
			topk.finishPrompt();
			delayed.prefill(prompt, prompt.length);
			for (int i = 0; i < R; i++) {
				assertThat(((GriffinState) start.state(0)).experts()).as("token %d", i).isNull();
				float[] want = full.decode(reply[i]);
				assertThat(maxDifference(start.decode(reply[i]), want)).as("token %d: the full model's logits", i)
					.isLessThan(1e-4);
				delayed.decode(reply[i]);
			}
			boolean differs = false;
			for (int layer = 0; layer < layers; layer++) {
				int[] chosen = ((GriffinState) start.state(layer)).experts().indices();
				assertThat(chosen).as("layer %d", layer)
					.containsExactly(((GriffinState) topk.state(layer)).experts().indices());
				differs |= !Arrays.equals(chosen, ((GriffinState) delayed.state(layer)).experts().indices());
			}
			assertThat(differs).as("delayed's reply tokens change some layer's choice").isTrue();
			float[] got = start.decode(reply[R]);
			assertThat(maxDifference(got, full.decode(reply[R]))).as("after the start: the experts")
				.isGreaterThan(1e-3);
		}
	}

	/**
	 * In a batched decode step the recorded tokens are dense rows of the pass where the
	 * native layer call returns their statistic (the {@code NATIVE} decode form), and run
	 * alone through the prompt pass otherwise: either way each step's logits and then the
	 * experts are those of the sequence decoding alone, beside a dense and a {@code topk}
	 * sequence that keep their own.
	 */
	@ParameterizedTest(name = "{0}")
	@EnumSource(value = Kernels.Decode.class, names = { "NATIVE", "SINGLE" })
	void inABatchTheRecordedTokensSelectAsAlone(Kernels.Decode form) {
		CausalLm dense = DelayedSelectionTests.dense.withKernels(new Kernels(form, Kernels.Prefill.NATIVE, 1));
		CausalLm delayedModel = variant(dense, SelectionMethod.DELAYED);
		assertThat(delayedModel.recordsInBatch()).as("the batch records").isEqualTo(form == Kernels.Decode.NATIVE);
		int[] reply = reply(dense, 5, 23);
		try (InferenceSession alone = new InferenceSession(delayedModel, 64);
				InferenceSession delayed = new InferenceSession(delayedModel, 64);
				InferenceSession full = new InferenceSession(dense, 64);
				InferenceSession topk = new InferenceSession(variant(dense, SelectionMethod.TOPK), 64);
				InferenceSession fullAlone = new InferenceSession(dense, 64);
				InferenceSession topkAlone = new InferenceSession(variant(dense, SelectionMethod.TOPK), 64)) {
			alone.prefill(prompt, prompt.length);
			delayed.prefill(prompt, prompt.length);
			full.prefill(Arrays.copyOf(prompt, 4), 4);
			fullAlone.prefill(Arrays.copyOf(prompt, 4), 4);
			topk.prefill(Arrays.copyOf(prompt, 6), 6);
			topkAlone.prefill(Arrays.copyOf(prompt, 6), 6);
			for (int i = 0; i < reply.length; i++) {
				int other = reply[reply.length - 1 - i];
				float[][] batch = InferenceSession.decodeBatch(List.of(full, delayed, topk),
						new int[] { other, reply[i], other });
				assertThat(maxDifference(batch[1], alone.decode(reply[i]))).as("token %d, delayed", i).isLessThan(1e-4);
				assertThat(maxDifference(batch[0], fullAlone.decode(other))).as("token %d, dense", i).isLessThan(1e-4);
				assertThat(maxDifference(batch[2], topkAlone.decode(other))).as("token %d, topk", i).isLessThan(1e-4);
				assertThat(delayed.state(0).recordsGeneration()).as("token %d", i).isEqualTo(i + 1 < R);
			}
			for (int layer = 0; layer < dense.config().numberOfLayers(); layer++) {
				assertThat(((GriffinState) delayed.state(layer)).experts().indices()).as("layer %d", layer)
					.containsExactly(((GriffinState) alone.state(layer)).experts().indices());
			}
		}
	}

	@Test
	void aPromptCacheEntryHoldsThePromptsStatisticAndASequenceStartedFromItDecodesAlike() {
		CausalLm model = variant(SelectionMethod.DELAYED);
		int layers = dense.config().numberOfLayers();
		try (InferenceSession first = new InferenceSession(model, 64);
				InferenceSession second = new InferenceSession(model, 64)) {
			float[] original = first.prefill(prompt, prompt.length);
			first.finishPrompt();
			try (PromptCache.Processed held = PromptCache.hold(first, prompt, original, manager);
					PromptCache.Processed shared = PromptCache.share(held, second)) {
				for (FeedForward.Prepared prepared : held.held().feedForward()) {
					assertThat(prepared.bytes()).isEqualTo(8L * dense.config().intermediateSize());
				}
				float[] restored = shared.lastLogits();
				for (int i = 0; i < R + 4; i++) {
					int token = Sampler.argmax(original);
					assertThat(Sampler.argmax(restored)).as("token %d", i).isEqualTo(token);
					original = first.decode(token);
					restored = second.decode(token);
					assertThat(maxDifference(original, restored)).as("token %d", i).isLessThan(1e-4);
				}
				for (int layer = 0; layer < layers; layer++) {
					assertThat(((GriffinState) second.state(layer)).experts().indices()).as("layer %d", layer)
						.containsExactly(((GriffinState) first.state(layer)).experts().indices());
				}
				// once generated tokens have joined it, the statistic is not the prompt's
				assertThatThrownBy(() -> first.state(0).share(manager)).isInstanceOf(IllegalStateException.class);
			}
		}
	}

	@Test
	void teacherForcedLogitsEqualOneTokenAtATime() {
		int[] reply = new int[R + 4];
		for (int i = 0; i < reply.length; i++) {
			reply[i] = (11 + 17 * i) % dense.config().vocabularySize();
		}
		CausalLm model = variant(SelectionMethod.DELAYED);
		try (InferenceSession forced = new InferenceSession(model, 64);
				InferenceSession stepped = new InferenceSession(model, 64)) {
			forced.prefill(prompt, prompt.length);
			stepped.prefill(prompt, prompt.length);
			float[][] together = forced.decodeAllLogits(reply);
			assertThat(together.length).isEqualTo(reply.length);
			for (int i = 0; i < reply.length; i++) {
				assertThat(maxDifference(together[i], stepped.decode(reply[i]))).as("token %d", i).isLessThan(1e-4);
			}
			for (int layer = 0; layer < dense.config().numberOfLayers(); layer++) {
				assertThat(((GriffinState) forced.state(layer)).experts().indices()).as("layer %d", layer)
					.containsExactly(((GriffinState) stepped.state(layer)).experts().indices());
			}
		}
	}

	@Test
	void aReplyThatEndsBeforeSelectionRanTheFullModelThroughout() {
		try (InferenceSession delayed = new InferenceSession(variant(SelectionMethod.DELAYED), 64)) {
			delayed.prefill(prompt, prompt.length);
			delayed.decode(3);
			assertThat(delayed.state(0).recordsGeneration()).isTrue();
			assertThat(((GriffinState) delayed.state(0)).experts()).isNull();
		}
		try (InferenceSession topk = new InferenceSession(variant(SelectionMethod.TOPK), 64)) {
			topk.prefill(prompt, prompt.length);
			topk.decode(3);
			assertThat(topk.state(0).recordsGeneration()).isFalse();
			assertThatThrownBy(() -> topk.state(0).generatedTokenRecorded(manager))
				.isInstanceOf(IllegalStateException.class);
		}
	}

	/** R + 3 token ids of the model's vocabulary: first, first + step, ... */
	private static int[] reply(CausalLm model, int first, int step) {
		int[] reply = new int[R + 3];
		for (int i = 0; i < reply.length; i++) {
			reply[i] = (first + step * i) % model.config().vocabularySize();
		}
		return reply;
	}

	private static int[] sorted(int[] values) {
		int[] copy = values.clone();
		Arrays.sort(copy);
		return copy;
	}

	private static double maxDifference(float[] a, float[] b) {
		double worst = 0;
		for (int i = 0; i < a.length; i++) {
			worst = Math.max(worst, Math.abs(a[i] - b[i]));
		}
		return worst;
	}

}

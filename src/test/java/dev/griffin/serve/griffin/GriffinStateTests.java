package dev.griffin.serve.griffin;

import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.FeedForward;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A sequence's experts: selected at the end of its prompt, their weights gathered only
 * when a product needs them, and shared with a prompt cache as indices, so that a later
 * sequence gathers (and frees) its own.
 */
class GriffinStateTests {

	private static NDManager manager;

	private static CausalLm dense;

	@BeforeAll
	static void load() {
		manager = NDManager.newBaseManager();
		dense = Fixtures.tinyModel("tiny-llama", ModelOptions.CPU_FLOAT32, manager);
	}

	@AfterAll
	static void close() {
		manager.close();
	}

	@Test
	void expertsAreGatheredWhenAProductNeedsThemAndSharedAsIndices() {
		CausalLm griffin = GriffinTransform.apply(dense, DensitySchedule.uniform(0.5, dense.config().numberOfLayers()),
				SelectionMethod.TOPK);
		int[] prompt = Fixtures.ints(Fixtures.json("tiny-llama/reference.json").get("prompt"));
		int k = ((GriffinFeedForward) griffin.layers().get(0).feedForward()).expertCount();
		try (InferenceSession first = new InferenceSession(griffin, 64);
				InferenceSession second = new InferenceSession(griffin, 64);
				InferenceSession eager = new InferenceSession(griffin, 64)) {
			first.prefill(prompt, prompt.length);
			first.finishPrompt();
			GriffinState state = (GriffinState) first.state(0);
			LayerExperts experts = state.experts();
			assertThat(experts.indices()).hasSize(k);
			assertThat(experts.gathered()).isFalse();
			assertThat(experts.bytes()).isZero();

			// a prompt cache keeps the indices; the sharing sequence keeps its experts
			FeedForward.Prepared shared = state.share(manager);
			assertThat(shared).isInstanceOf(LayerExperts.Choice.class);
			assertThat(shared.bytes()).isEqualTo((long) k * Integer.BYTES);
			assertThat(state.experts()).isSameAs(experts);

			// a lone step gathers what it reads: 2k rows of gate and up, k columns of
			// down
			float[] firstStep = first.decode(7);
			assertThat(experts.gathered()).isTrue();
			long d = dense.config().hiddenSize();
			assertThat(experts.bytes()).isEqualTo(3L * k * d * Float.BYTES);

			// a sequence starting from the shared indices has experts of its own, which
			// outlive the first sequence's
			GriffinState reused = (GriffinState) second.state(0);
			reused.reuse(shared);
			assertThat(reused.experts()).isNotSameAs(experts);
			assertThat(reused.experts().indices()).containsExactly(experts.indices());
			assertThat(reused.experts().gathered()).isFalse();
			first.close();
			assertThat(experts.gathered()).isFalse();

			// gathering ahead of the first step gives the same step
			eager.prefill(prompt, prompt.length);
			eager.finishPrompt();
			eager.gatherWeights();
			for (int layer = 0; layer < dense.config().numberOfLayers(); layer++) {
				assertThat(((GriffinState) eager.state(layer)).experts().gathered()).as("layer %d", layer).isTrue();
			}
			assertThat(eager.decode(7)).containsExactly(firstStep);
		}
	}

}

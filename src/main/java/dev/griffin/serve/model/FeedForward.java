package dev.griffin.serve.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

/**
 * The feed-forward seam of a decoder layer. Implementations are shared by every sequence
 * and never mutated; what a sequence needs to remember between calls lives in the
 * {@link State} it owns.
 */
public interface FeedForward {

	/** Which part of a sequence a forward pass computes. */
	enum Phase {

		/** Prompt tokens (possibly in chunks); generation has not started. */
		PROMPT,
		/** One generated token at a time. */
		GENERATION

	}

	/** Per-sequence state of one layer's feed-forward block. */
	interface State extends AutoCloseable {

		/**
		 * Ends the prompt: whatever the prompt phase prepared for generation is fixed
		 * now.
		 * @param manager the sequence's manager, owner of anything that must outlive this
		 * call
		 */
		default void finishPrompt(NDManager manager) {
		}

		/**
		 * Whether this sequence's next generated token must run the full block and add to
		 * the prompt statistic, as a prompt token does: a selection that waits for the
		 * first generated tokens. The session then runs that token in the prompt phase,
		 * or as a dense row of a batched decode step that hands its statistic to
		 * {@link #recordGenerated}, and calls {@link #generatedTokenRecorded} after it.
		 */
		default boolean recordsGeneration() {
			return false;
		}

		/**
		 * Adds a generated token's statistic ({@code ExpertSelector.sumOfSquares} of its
		 * activations in the full block), computed in a batched decode step, as its
		 * prompt pass would have ({@link #recordsGeneration}).
		 * @throws IllegalStateException when this state records no generated token
		 */
		default void recordGenerated(double[] sumOfSquares) {
			throw new IllegalStateException("this feed-forward state records no generated token");
		}

		/**
		 * A generated token ran in the prompt phase ({@link #recordsGeneration}); the
		 * state may now fix what the rest of generation uses, as {@link #finishPrompt}
		 * does for the others.
		 * @param manager the sequence's manager
		 */
		default void generatedTokenRecorded(NDManager manager) {
		}

		/**
		 * Prepares now what this sequence's own one-token products read under
		 * {@code kernels} (GRIFFIN gathers its experts' weights, and packs them where the
		 * plan reads packed copies), which otherwise the first product that needs it
		 * does. A no-op before the prompt has finished.
		 */
		default void gatherWeights(Kernels kernels) {
		}

		/**
		 * What {@link #finishPrompt} fixed, for a prompt cache, so that a later sequence
		 * with the same prompt can start from it: anything native it holds moves to
		 * {@code owner} and the returned value owns it from now on, while this state
		 * keeps what it reads itself.
		 * @return null when the block fixes nothing at the end of a prompt
		 */
		default Prepared share(NDManager owner) {
			return null;
		}

		/**
		 * Starts generation from what another sequence's prompt fixed (see
		 * {@link #share}), instead of running the prompt; the state reads it and never
		 * frees it.
		 */
		default void reuse(Prepared prepared) {
			if (prepared != null) {
				throw new IllegalArgumentException("this feed-forward block has no prompt state to reuse");
			}
		}

		/**
		 * Whether the prompt phase accumulates a statistic in this state (GRIFFIN's s^2),
		 * which a prompt prefix cached for later sequences must carry
		 * ({@link #promptSoFar}).
		 */
		default boolean recordsPrompt() {
			return false;
		}

		/**
		 * The statistic of the prompt tokens run so far, for a cached prompt prefix from
		 * which a later sequence continues its own prompt ({@link #resumePrompt}); this
		 * state keeps its own.
		 * @return null when the block records nothing in the prompt phase
		 * @throws IllegalStateException after the prompt has finished
		 */
		default Prepared promptSoFar() {
			return null;
		}

		/**
		 * Continues a prompt whose first tokens another sequence ran: starts from their
		 * statistic ({@link #promptSoFar}); the state copies it and never frees it.
		 * @throws IllegalStateException when this state has already run a prompt token
		 */
		default void resumePrompt(Prepared prefix) {
			if (prefix != null) {
				throw new IllegalArgumentException("this feed-forward block has no prompt statistic to resume");
			}
		}

		/**
		 * The weights one generated token of this sequence reads, for a batched decode
		 * step: null for the layer's dense weights (every neuron), otherwise the
		 * sequence's own (GRIFFIN's gathered experts; none selected reads as no neuron).
		 * @throws IllegalStateException before the prompt has fixed them
		 */
		default Kernels.BlockWeights generationWeights() {
			return null;
		}

		@Override
		default void close() {
		}

	}

	/**
	 * What a prompt fixed for one layer's generation, shareable read-only between the
	 * sequences that start from the same prompt.
	 */
	interface Prepared extends AutoCloseable {

		/** Bytes held, for the prompt cache's size bound. */
		long bytes();

		/** Frees the native memory. */
		@Override
		void close();

	}

	/** A state that holds nothing, for stateless blocks. */
	State STATELESS = new State() {
	};

	/**
	 * Creates the state of one sequence.
	 * @param seed seeds whatever randomness the block uses for this sequence
	 */
	default State newState(long seed) {
		return STATELESS;
	}

	/**
	 * Whether a generated token's output is exactly the block ({@link Weights}) over the
	 * weights its state's {@link State#generationWeights} names, so that a decode step
	 * may compute it inside a fused layer (the {@link Kernels.Decode#LAYER} form, a
	 * batched step) without calling {@link #forward}. A block that does anything else in
	 * generation (records activations, perturbs them) keeps the default: its generated
	 * tokens then go through {@link #forward}, one sequence at a time.
	 */
	default boolean fusable() {
		return false;
	}

	/**
	 * Whether a prompt pass of this block is exactly the dense block ({@link Weights})
	 * over every token, apart from the statistic {@link #recordPrompt} takes, so that a
	 * prompt pass may compute it inside a fused layer (the native prefill form) without
	 * calling {@link #forward}. A block that does anything else with a prompt keeps the
	 * default.
	 */
	default boolean promptFusable() {
		return false;
	}

	/**
	 * Whether a fused prompt pass hands this sequence's state the prompt statistic of the
	 * block's activations ({@link #recordPrompt}).
	 * @throws IllegalStateException where {@link #forward} would refuse prompt tokens
	 */
	default boolean recordsPrompt(State state) {
		return false;
	}

	/**
	 * Takes what a fused prompt pass computed of this block's activations for a sequence:
	 * GRIFFIN's statistic of the pass's tokens, {@code s_j^2} summed over them as
	 * {@code ExpertSelector.sumOfSquares} sums it.
	 */
	default void recordPrompt(State state, double[] sumOfSquares) {
		throw new UnsupportedOperationException("this feed-forward block records nothing of a prompt");
	}

	/** x: [T, D] -> [T, D], its products computed as {@code kernels} says. */
	NDArray forward(NDArray x, Phase phase, State state, Kernels kernels);

	/** The dense weights this block computes with. */
	Weights weights();

	/**
	 * Feed-forward weights, every matrix in the checkpoint's [out, in] layout, so that
	 * each projection is a {@code linear}: on the CPU libtorch's float16 matrix-vector
	 * product runs about 1.7x faster in that form than as {@code z.matMul(W^T)} with W^T
	 * stored contiguously (float32 runs the same in both). A gated block computes
	 * {@code down(act(gate x) * up x)}; a non-gated one (OPT)
	 * {@code down(act(up x + b_up)) + b_down}.
	 *
	 * @param gateUp [2F, D], gate rows then up rows; for a non-gated block [F, D], the up
	 * rows alone
	 * @param down [D, F], W_down
	 * @param intermediateSize F
	 * @param activation act, on the gate (on the up rows of a non-gated block)
	 * @param halves views of the two halves of neurons, for the split decode form; null
	 * for a non-gated block
	 * @param gated whether gateUp holds gate and up rows
	 * @param upBias [F] or null (gated blocks have none)
	 * @param downBias [D] or null (gated blocks have none)
	 */
	record Weights(NDArray gateUp, NDArray down, int intermediateSize, HiddenActivation activation,
			Kernels.Halves halves, boolean gated, NDArray upBias, NDArray downBias) implements Kernels.BlockWeights {

		public Weights {
			if (gated && (upBias != null || downBias != null)) {
				throw new IllegalArgumentException("a gated block has no biases here");
			}
			if (!gated && halves != null) {
				throw new IllegalArgumentException("the split decode form computes gated blocks only");
			}
		}

		/** A gated block's weights, and their halves for the split decode form. */
		public Weights(NDArray gateUp, NDArray down, int intermediateSize, HiddenActivation activation) {
			this(gateUp, down, intermediateSize, activation, Kernels.Halves.of(gateUp, down, intermediateSize), true,
					null, null);
		}

		/**
		 * A non-gated block's weights (OPT's fc1 and fc2).
		 * @param up [F, D]
		 * @param upBias [F] or null
		 * @param down [D, F]
		 * @param downBias [D] or null
		 */
		public static Weights ungated(NDArray up, NDArray upBias, NDArray down, NDArray downBias, int intermediateSize,
				HiddenActivation activation) {
			return new Weights(up, down, intermediateSize, activation, null, false, upBias, downBias);
		}

	}

}

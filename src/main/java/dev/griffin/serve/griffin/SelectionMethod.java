package dev.griffin.serve.griffin;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * How GRIFFIN picks a sequence's experts from the prompt statistic s (Dong et al. 2024,
 * section 4 and appendix): {@code topk} is the method of the paper; the others are its
 * ablations and baselines.
 */
public enum SelectionMethod {

	/** The k neurons with the largest s_j. */
	TOPK("topk"),
	/** k neurons drawn without replacement with probability proportional to s_j. */
	SAMPLE("sample"),
	/** The top k/2 neurons, plus k - k/2 drawn proportionally to s_j from the rest. */
	TOPK_SAMPLE("topk_sample"),
	/** k neurons drawn uniformly: the "no flocking" control. */
	RANDOM("random"),
	/**
	 * A static selection made once at load time by ||W_gate row|| * ||W_up row||: the
	 * neuron-magnitude pruning baseline, the same for every prompt.
	 */
	MAGNITUDE("magnitude"),
	/**
	 * The k neurons with the largest s_j * ||W_down[:, j]||: the prompt statistic
	 * weighted by how much each neuron can move the block's output (WINA, Chen et al.
	 * 2025, arXiv 2505.19427, applied to GRIFFIN's statistic).
	 */
	WINA("wina"),
	/**
	 * The k neurons with the largest s_j^2 + tau * g_j, where g is the model's neuron
	 * prior (each neuron's mean share of a generated token's Zbar^2, measured once per
	 * model by the {@code prior} command) and tau its weight in tokens: a short prompt
	 * leans on the prior, a long one on itself (after GLASS, arXiv 2508.14302, which
	 * blends a prompt's local statistic with a global one).
	 */
	GLASS("glass"),
	/**
	 * {@code topk} with a density per layer at the same mean: the model's neuron prior
	 * holds how far its replies move when each layer alone runs GRIFFIN at a few
	 * densities, and {@link NeuronPrior#schedule} gives the layers that move them most
	 * more of the neurons.
	 */
	LAYERWISE("layerwise"),
	/**
	 * {@code topk} over the statistic of the prompt and of the reply's first tokens: the
	 * first {@link GriffinFeedForward#DELAY_TOKENS} generated tokens run the full block
	 * and add their activations, weighted to hold {@link GriffinFeedForward#REPLY_SHARE}
	 * of the statistic (never less than their own count), and only then are the experts
	 * selected. A reply's first tokens tell more of the neurons the rest of it needs than
	 * a prompt does, most of all a short prompt.
	 */
	DELAYED("delayed"),
	/**
	 * {@code topk}'s experts, used only after the reply's first
	 * {@link GriffinFeedForward#DELAY_TOKENS} tokens, which run the full block: the
	 * sparse model continues a reply the full model began. On SmolLM2's summaries this
	 * start is all that {@code delayed} gains over {@code topk} in ROUGE-L, and on the
	 * 1.5B's at 0.5 the reply's tokens in the statistic are what cost {@code delayed}
	 * (docs/results.md, "A dense start").
	 */
	DENSE_START("dense_start");

	/**
	 * The server's method for requests that name none
	 * ({@code griffin.generation.default-method}): {@code delayed}, which followed the
	 * full model more closely than {@code topk} on every model measured and was no worse
	 * at the default density, 0.75; at 0.5 on Qwen2.5-Coder-1.5B's chat summaries it
	 * scored below {@code topk}, where {@link #DENSE_START} did not (docs/results.md,
	 * "Selecting after the reply's first tokens", "A dense start"). At 0.75 the two
	 * scored alike on every model measured.
	 */
	public static final String SERVER_DEFAULT = "delayed";

	private final String wireName;

	SelectionMethod(String wireName) {
		this.wireName = wireName;
	}

	public String wireName() {
		return this.wireName;
	}

	public boolean usesPrompt() {
		return this != MAGNITUDE;
	}

	/** Whether the method needs the model's neuron prior file ({@link NeuronPrior}). */
	public boolean usesPrior() {
		return this == GLASS || this == LAYERWISE;
	}

	/** Whether the method ranks neurons by a blend of s^2 and the prior's g. */
	public boolean blendsPrior() {
		return this == GLASS;
	}

	/** Whether each layer's density comes from the prior's layer sensitivities. */
	public boolean spreadsDensity() {
		return this == LAYERWISE;
	}

	/**
	 * Whether the experts are selected after the first generated tokens, which run the
	 * full block, instead of at the end of the prompt.
	 */
	public boolean delaysSelection() {
		return this == DELAYED || this == DENSE_START;
	}

	/**
	 * The share of the statistic the first generated tokens hold at a delayed selection
	 * ({@link #delaysSelection}): {@link GriffinFeedForward#REPLY_SHARE} for
	 * {@code delayed}, none for {@code dense_start}, which selects by the prompt alone.
	 */
	public double replyShare() {
		return switch (this) {
			case DELAYED -> GriffinFeedForward.REPLY_SHARE;
			case DENSE_START -> 0;
			default -> throw new IllegalStateException(this.wireName + " selects at the end of the prompt");
		};
	}

	/** The wire names, in declaration order. */
	public static List<String> wireNames() {
		return Arrays.stream(values()).map(SelectionMethod::wireName).toList();
	}

	public static SelectionMethod parse(String name) {
		String key = name.trim().toLowerCase(Locale.ROOT).replace('-', '_');
		for (SelectionMethod method : values()) {
			if (method.wireName.equals(key)) {
				return method;
			}
		}
		throw new IllegalArgumentException("selection method '" + name + "' is not one of " + wireNames());
	}

}

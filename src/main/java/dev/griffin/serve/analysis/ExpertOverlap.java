package dev.griffin.serve.analysis;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.function.IntConsumer;

import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.griffin.GriffinState;
import dev.griffin.serve.model.CausalLm;

/**
 * How much the experts of different prompts overlap: the measurement behind a batch's
 * third GRIFFIN form. A batch of B GRIFFIN sequences could read only the union of their
 * experts instead of the whole feed-forward block (the masked form); that pays only if
 * the union stays well below F. For groups of B prompts drawn from a set, this reports
 * the union's size as a fraction of F, per layer and over the layers, next to what
 * independent random sets of the same size would give (1 - (1 - d)^B).
 */
public final class ExpertOverlap {

	/**
	 * Union sizes of groups of one batch size.
	 *
	 * @param batch prompts per group
	 * @param groups groups drawn
	 * @param union the union's mean fraction of F, over layers and groups
	 * @param minLayer the lowest layer's mean fraction
	 * @param maxLayer the highest layer's mean fraction
	 * @param perLayer each layer's mean fraction
	 * @param independent the fraction independent random expert sets would cover
	 */
	public record Row(int batch, int groups, double union, double minLayer, double maxLayer, double[] perLayer,
			double independent) {

	}

	private ExpertOverlap() {
	}

	/**
	 * The experts each prompt selects in each layer: [prompt][layer] ascending neuron
	 * indices. Runs every prompt through {@code griffin} (a GRIFFIN variant).
	 * @param done told how many prompts have run, after each
	 */
	public static int[][][] experts(CausalLm griffin, List<int[]> prompts, IntConsumer done) {
		int layers = griffin.config().numberOfLayers();
		int[][][] experts = new int[prompts.size()][layers][];
		for (int p = 0; p < prompts.size(); p++) {
			int[] prompt = prompts.get(p);
			try (InferenceSession session = new InferenceSession(griffin, prompt.length)) {
				session.prefill(prompt, Generator.PREFILL_CHUNK);
				session.finishPrompt();
				for (int layer = 0; layer < layers; layer++) {
					if (!(session.state(layer) instanceof GriffinState state)) {
						throw new IllegalArgumentException("layer " + layer + " is not a GRIFFIN block");
					}
					experts[p][layer] = state.experts().neurons().clone();
				}
			}
			done.accept(p + 1);
		}
		return experts;
	}

	/**
	 * Union fractions for each batch size over {@code groups} groups of distinct prompts
	 * drawn with {@code seed}.
	 * @param experts [prompt][layer] neuron indices, as {@link #experts} returns
	 * @param neurons F, the feed-forward width
	 */
	public static List<Row> measure(int[][][] experts, int neurons, List<Integer> batches, int groups, long seed) {
		int prompts = experts.length;
		int layers = experts[0].length;
		double density = 0;
		for (int[][] prompt : experts) {
			for (int[] layer : prompt) {
				density += (double) layer.length / neurons;
			}
		}
		density /= (double) prompts * layers;
		Random random = new Random(seed);
		List<Row> rows = new ArrayList<>();
		for (int batch : batches) {
			if (batch < 1 || batch > prompts) {
				throw new IllegalArgumentException(
						"a batch of %d needs 1..%d prompts (there are %d)".formatted(batch, prompts, prompts));
			}
			long[] covered = new long[layers];
			for (int g = 0; g < groups; g++) {
				int[] group = draw(random, prompts, batch);
				for (int layer = 0; layer < layers; layer++) {
					BitSet union = new BitSet(neurons);
					for (int p : group) {
						for (int neuron : experts[p][layer]) {
							union.set(neuron);
						}
					}
					covered[layer] += union.cardinality();
				}
			}
			double[] perLayer = new double[layers];
			for (int layer = 0; layer < layers; layer++) {
				perLayer[layer] = (double) covered[layer] / ((double) groups * neurons);
			}
			double sum = 0;
			double min = Double.MAX_VALUE;
			double max = 0;
			for (double fraction : perLayer) {
				sum += fraction;
				min = Math.min(min, fraction);
				max = Math.max(max, fraction);
			}
			rows.add(new Row(batch, groups, sum / layers, min, max, perLayer, 1 - Math.pow(1 - density, batch)));
		}
		return rows;
	}

	/** {@code k} distinct indices of [0, n), a partial Fisher-Yates shuffle. */
	private static int[] draw(Random random, int n, int k) {
		int[] all = new int[n];
		for (int i = 0; i < n; i++) {
			all[i] = i;
		}
		for (int i = 0; i < k; i++) {
			int j = i + random.nextInt(n - i);
			int swap = all[i];
			all[i] = all[j];
			all[j] = swap;
		}
		int[] group = new int[k];
		System.arraycopy(all, 0, group, 0, k);
		return group;
	}

}

package dev.griffin.serve.analysis;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import javax.imageio.ImageIO;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;

import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.generation.Sampler;
import dev.griffin.serve.griffin.ExpertSelector;
import dev.griffin.serve.griffin.ReferenceExpertSelector;
import dev.griffin.serve.model.CausalLm;

/**
 * Flocking (Dong et al. 2024, section 3): the tokens of one sequence activate largely the
 * same feed-forward neurons. Runs the dense model on a prompt and a greedy continuation
 * while recording every token's activations Z = act(x W_gate^T) * (x W_up^T), then
 * measures, per layer, the Jaccard similarity between the experts the prompt selects
 * (top-k of s) and the top-k neurons (by |Z|) of each generated token, and draws |Z| as a
 * heatmap with neurons ordered by the prompt statistic.
 */
public final class Flocking {

	/**
	 * What one run recorded.
	 *
	 * @param promptTokens how many of the rows are prompt tokens
	 * @param activations per layer, per token, Z over the F neurons
	 * @param jaccard per layer, the mean Jaccard similarity of prompt experts and
	 * generated tokens' top-k
	 * @param experts k
	 */
	public record Result(int promptTokens, List<List<float[]>> activations, double[] jaccard, int experts) {

	}

	private Flocking() {
	}

	/**
	 * Records activations for a prompt and {@code generate} greedy tokens, with k =
	 * floor(F * density).
	 */
	public static Result measure(CausalLm dense, int[] prompt, int generate, double density) {
		int layers = dense.config().numberOfLayers();
		List<List<float[]>> activations = new ArrayList<>();
		for (int i = 0; i < layers; i++) {
			activations.add(new ArrayList<>());
		}
		CausalLm recording = dense
			.withFeedForwards((layer, feedForward) -> new Recorder(feedForward.weights(), activations.get(layer)));
		try (InferenceSession session = new InferenceSession(recording, prompt.length + generate + 1)) {
			float[] logits = session.prefill(prompt, prompt.length);
			for (int i = 0; i < generate; i++) {
				logits = session.decode(Sampler.argmax(logits));
			}
		}
		int f = dense.config().intermediateSize();
		int k = (int) Math.floor(f * density);
		double[] jaccard = new double[layers];
		for (int layer = 0; layer < layers; layer++) {
			List<float[]> rows = activations.get(layer);
			float[][] promptRows = rows.subList(0, prompt.length).toArray(new float[0][]);
			Set<Integer> selected = set(ReferenceExpertSelector.selectTopK(promptRows, k));
			double sum = 0;
			int count = 0;
			for (float[] row : rows.subList(prompt.length, rows.size())) {
				double[] magnitude = new double[row.length];
				for (int j = 0; j < row.length; j++) {
					magnitude[j] = Math.abs(row[j]);
				}
				Set<Integer> top = set(ExpertSelector.top(magnitude, k));
				Set<Integer> union = new HashSet<>(selected);
				union.addAll(top);
				top.retainAll(selected);
				sum += union.isEmpty() ? 1 : (double) top.size() / union.size();
				count++;
			}
			jaccard[layer] = (count == 0) ? Double.NaN : sum / count;
		}
		return new Result(prompt.length, activations, jaccard, k);
	}

	private static Set<Integer> set(int[] values) {
		Set<Integer> set = new HashSet<>();
		for (int value : values) {
			set.add(value);
		}
		return set;
	}

	/**
	 * |Z| of one layer as a PNG: one row per token (prompt above the red horizontal line,
	 * generation below), one column per neuron ordered by the prompt statistic s (largest
	 * first; the red vertical line marks k), each token normalised to its own maximum. No
	 * text is drawn, so no fonts are needed on a headless server.
	 */
	public static byte[] heatmap(Result result, int layer) {
		List<float[]> rows = result.activations().get(layer);
		int tokens = rows.size();
		int neurons = rows.get(0).length;
		double[] s2 = ReferenceExpertSelector
			.sumOfSquares(rows.subList(0, result.promptTokens()).toArray(new float[0][]));
		int[] order = ExpertSelector.top(s2, neurons);
		int cellHeight = Math.max(1, Math.min(8, 480 / Math.max(1, tokens)));
		int columns = Math.min(neurons, 1536);
		int left = 10;
		int top = 10;
		int width = left + columns + 20;
		int height = top + tokens * cellHeight + 10;
		BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
		Graphics2D g = image.createGraphics();
		g.setColor(Color.WHITE);
		g.fillRect(0, 0, width, height);
		for (int t = 0; t < tokens; t++) {
			float[] row = rows.get(t);
			float max = 1e-12f;
			for (float v : row) {
				max = Math.max(max, Math.abs(v));
			}
			for (int c = 0; c < columns; c++) {
				int rgb = color(Math.sqrt(Math.abs(row[order[c]]) / max));
				for (int y = 0; y < cellHeight; y++) {
					image.setRGB(left + c, top + t * cellHeight + y, rgb);
				}
			}
		}
		g.setColor(Color.RED);
		g.setStroke(new BasicStroke(2));
		int split = top + result.promptTokens() * cellHeight;
		g.drawLine(left - 5, split, left + columns + 5, split);
		int k = result.experts();
		g.drawLine(left + k, top - 5, left + k, top + tokens * cellHeight + 5);
		g.dispose();
		try (ByteArrayOutputStream out = new ByteArrayOutputStream()) {
			ImageIO.write(image, "png", out);
			return out.toByteArray();
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
	}

	/** A dark-to-bright colour ramp (navy, teal, yellow) for values in [0, 1]. */
	private static int color(double value) {
		double v = Math.max(0, Math.min(1, value));
		int r = (int) (255 * Math.min(1, Math.max(0, 1.6 * v - 0.5)));
		int gr = (int) (255 * Math.min(1, 1.1 * v));
		int b = (int) (255 * Math.max(0, 0.55 - 0.5 * v));
		return (r << 16) | (gr << 8) | b;
	}

	/** The dense block, recording every token's Z into a list owned by the caller. */
	private static final class Recorder extends ActivationRecorder {

		private final List<float[]> rows;

		Recorder(Weights weights, List<float[]> rows) {
			super(weights);
			this.rows = rows;
		}

		@Override
		void record(NDArray z, Phase phase) {
			int t = (int) z.getShape().get(0);
			int f = (int) z.getShape().get(1);
			float[] all = z.toType(DataType.FLOAT32, false).toFloatArray();
			for (int i = 0; i < t; i++) {
				this.rows.add(Arrays.copyOfRange(all, i * f, (i + 1) * f));
			}
		}

	}

}

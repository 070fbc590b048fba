package dev.griffin.serve.analysis;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * ROUGE-1, ROUGE-2 and ROUGE-L F-scores computed as Google's {@code rouge-score} package
 * computes them without stemming: lower-case, every run of characters outside [a-z0-9] is
 * a separator, n-gram overlap counts clipped by the reference, and the longest common
 * subsequence for ROUGE-L.
 */
public final class Rouge {

	private Rouge() {
	}

	/** Precision, recall and F-measure of one metric. */
	public record Score(double precision, double recall, double fmeasure) {

		static Score of(int overlap, int predicted, int reference) {
			double precision = overlap / (double) Math.max(predicted, 1);
			double recall = overlap / (double) Math.max(reference, 1);
			double f = (precision + recall > 0) ? 2 * precision * recall / (precision + recall) : 0;
			return new Score(precision, recall, f);
		}

	}

	/** ROUGE-1, ROUGE-2 and ROUGE-L of a prediction against a reference. */
	public record Scores(Score rouge1, Score rouge2, Score rougeL) {

	}

	public static Scores score(String reference, String prediction) {
		List<String> ref = tokenize(reference);
		List<String> pred = tokenize(prediction);
		return new Scores(ngrams(ref, pred, 1), ngrams(ref, pred, 2), lcs(ref, pred));
	}

	/** rouge-score's default tokenizer, no stemming. */
	public static List<String> tokenize(String text) {
		String normalised = text.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9]+", " ");
		List<String> tokens = new ArrayList<>();
		for (String token : normalised.split("\\s+")) {
			if (!token.isEmpty()) {
				tokens.add(token);
			}
		}
		return tokens;
	}

	private static Score ngrams(List<String> reference, List<String> prediction, int n) {
		Map<List<String>, Integer> referenceCounts = counts(reference, n);
		Map<List<String>, Integer> predictionCounts = counts(prediction, n);
		int overlap = 0;
		for (Map.Entry<List<String>, Integer> entry : predictionCounts.entrySet()) {
			overlap += Math.min(entry.getValue(), referenceCounts.getOrDefault(entry.getKey(), 0));
		}
		return Score.of(overlap, Math.max(0, prediction.size() - n + 1), Math.max(0, reference.size() - n + 1));
	}

	private static Map<List<String>, Integer> counts(List<String> tokens, int n) {
		Map<List<String>, Integer> counts = new HashMap<>();
		for (int i = 0; i + n <= tokens.size(); i++) {
			counts.merge(List.copyOf(tokens.subList(i, i + n)), 1, Integer::sum);
		}
		return counts;
	}

	private static Score lcs(List<String> reference, List<String> prediction) {
		if (reference.isEmpty() || prediction.isEmpty()) {
			return new Score(0, 0, 0);
		}
		int[][] table = new int[reference.size() + 1][prediction.size() + 1];
		for (int i = 1; i <= reference.size(); i++) {
			for (int j = 1; j <= prediction.size(); j++) {
				table[i][j] = reference.get(i - 1).equals(prediction.get(j - 1)) ? table[i - 1][j - 1] + 1
						: Math.max(table[i - 1][j], table[i][j - 1]);
			}
		}
		return Score.of(table[reference.size()][prediction.size()], prediction.size(), reference.size());
	}

}

package dev.griffin.serve.analysis;

import dev.griffin.serve.griffin.DefaultDensity;
import dev.griffin.serve.griffin.SelectionMethod;

/**
 * A model configuration under evaluation: a selection method and a density rule (a fixed
 * density, or dense below a prompt length as the server's default runs).
 *
 * @param name how results and files name it
 */
public record EvalConfiguration(String name, DefaultDensity density, SelectionMethod method) {

	/**
	 * {@code full} (or {@code dense}); {@code method:density}, e.g. {@code topk:0.5};
	 * {@code method:density:tokens}, dense for prompts of fewer tokens; or
	 * {@code default}, the server's default rule ({@link DefaultDensity#SERVER}) and
	 * method ({@link SelectionMethod#SERVER_DEFAULT}).
	 */
	public static EvalConfiguration parse(String text) {
		if (text.equals("full") || text.equals("dense")) {
			return new EvalConfiguration("full", new DefaultDensity(1.0, 0), SelectionMethod.TOPK);
		}
		if (text.equals("default")) {
			return new EvalConfiguration("default", DefaultDensity.SERVER,
					SelectionMethod.parse(SelectionMethod.SERVER_DEFAULT));
		}
		String[] parts = text.split(":");
		if (parts.length != 2 && parts.length != 3) {
			throw new IllegalArgumentException("configuration '" + text
					+ "' is not full, default, method:density or method:density:tokens (e.g. topk:0.5, topk:0.75:96)");
		}
		SelectionMethod method = SelectionMethod.parse(parts[0]);
		double density = Double.parseDouble(parts[1]);
		int denseBelow = (parts.length == 3) ? Integer.parseInt(parts[2]) : 0;
		String name = (method == SelectionMethod.TOPK ? "griffin" : method.wireName()) + "-" + parts[1]
				+ ((denseBelow > 0) ? "-dense-below-" + denseBelow : "");
		return new EvalConfiguration(name, new DefaultDensity(density, denseBelow), method);
	}

	/** The density a prompt of {@code promptTokens} tokens runs at. */
	public double densityFor(int promptTokens) {
		return this.density.forPrompt(promptTokens);
	}

}

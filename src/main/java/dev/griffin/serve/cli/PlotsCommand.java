package dev.griffin.serve.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.markers.SeriesMarkers;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.analysis.Flocking;

/**
 * The pictures of docs/: ROUGE vs density, decode speed vs density (ours and
 * transformers), flocking.
 */
@Command(name = "plots", mixinStandardHelpOptions = true,
		description = "Draw docs/ pictures from eval and bench results (and a flocking heatmap from the model).")
public class PlotsCommand implements Callable<Integer> {

	private static final ObjectMapper JSON = new ObjectMapper();

	@Mixin
	ModelOptionsMixin model;

	@Option(names = "--eval", defaultValue = "target/eval/sampled/results.json")
	Path eval;

	@Option(names = "--bench", defaultValue = "target/bench-sweep.json", description = "Our bench over densities.")
	Path bench;

	@Option(names = "--bench-hf", defaultValue = "target/bench-hf.json",
			description = "tools/reference/bench_hf.py output.")
	Path benchHf;

	@Option(names = "--output", defaultValue = "docs")
	Path output;

	@Option(names = "--flocking-prompt",
			defaultValue = "The river rises in the hills above the town and runs for forty miles to the sea. In spring")
	String flockingPrompt;

	@Override
	public Integer call() throws IOException {
		Files.createDirectories(this.output);
		if (Files.exists(this.eval)) {
			rougeVsDensity();
		}
		if (Files.exists(this.bench)) {
			speedVsDensity();
		}
		this.model.configureEngine();
		try (LoadedModel loaded = this.model.load((layers) -> {
		})) {
			int[] prompt = loaded.tokenizer().encode(this.flockingPrompt);
			Flocking.Result result = Flocking.measure(loaded.dense(), prompt, 32, 0.5);
			int layer = loaded.dense().config().numberOfLayers() / 2;
			Files.write(this.output.resolve("flocking-layer" + layer + ".png"), Flocking.heatmap(result, layer));
			System.out.printf("flocking: layer %d Jaccard %.3f%n", layer, result.jaccard()[layer]);
		}
		return 0;
	}

	private void rougeVsDensity() throws IOException {
		JsonNode results = JSON.readTree(this.eval.toFile()).get("results");
		List<Double> densities = new ArrayList<>();
		List<Double> rougeL = new ArrayList<>();
		double full = Double.NaN;
		XYChart chart = new XYChartBuilder().width(720)
			.height(440)
			.title("ROUGE-L vs FF density (one-shot XSum)")
			.xAxisTitle("density (fraction of FF neurons kept)")
			.yAxisTitle("ROUGE-L F x 100")
			.build();
		for (JsonNode row : results) {
			String name = row.get("configuration").asText();
			if (name.equals("full")) {
				full = row.get("rougeL").asDouble();
			}
			else if (name.startsWith("griffin-")) {
				densities.add(Double.parseDouble(name.substring("griffin-".length())));
				rougeL.add(row.get("rougeL").asDouble());
			}
			else {
				double density = Double.parseDouble(name.substring(name.indexOf('-') + 1));
				chart
					.addSeries(name.substring(0, name.indexOf('-')), new double[] { density },
							new double[] { row.get("rougeL").asDouble() })
					.setMarker(SeriesMarkers.DIAMOND);
			}
		}
		List<Integer> order = new ArrayList<>();
		for (int i = 0; i < densities.size(); i++) {
			order.add(i);
		}
		order.sort((a, b) -> Double.compare(densities.get(a), densities.get(b)));
		densities.add(1.0);
		rougeL.add(full);
		order.add(densities.size() - 1);
		chart.addSeries("GRIFFIN (1.0 = full model)", order.stream().mapToDouble(densities::get).toArray(),
				order.stream().mapToDouble(rougeL::get).toArray());
		BitmapEncoder.saveBitmap(chart, this.output.resolve("rouge-vs-density").toString(),
				BitmapEncoder.BitmapFormat.PNG);
	}

	private void speedVsDensity() throws IOException {
		XYChart chart = new XYChartBuilder().width(720)
			.height(440)
			.title("Decode tokens/s vs FF density (float32, batch 1, 512-token prompt)")
			.xAxisTitle("density")
			.yAxisTitle("decode tokens/s")
			.build();
		addSpeedSeries(chart, "griffin-serve (DJL)", this.bench);
		if (Files.exists(this.benchHf)) {
			addSpeedSeries(chart, "Hugging Face transformers", this.benchHf);
		}
		BitmapEncoder.saveBitmap(chart, this.output.resolve("decode-vs-density").toString(),
				BitmapEncoder.BitmapFormat.PNG);
	}

	private static void addSpeedSeries(XYChart chart, String name, Path file) throws IOException {
		List<double[]> points = new ArrayList<>();
		for (JsonNode row : JSON.readTree(file.toFile()).get("results")) {
			if (row.path("dtype").asText().equals("float32")) {
				points.add(new double[] { row.get("density").asDouble(), row.get("decodeTokensPerSecond").asDouble() });
			}
		}
		points.sort((a, b) -> Double.compare(a[0], b[0]));
		chart.addSeries(name, points.stream().mapToDouble((p) -> p[0]).toArray(),
				points.stream().mapToDouble((p) -> p[1]).toArray());
	}

}

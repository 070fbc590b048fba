package dev.griffin.serve.analysis;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/** The eval on 2 one-shot XSum prompts with a small token budget, and its resumption. */
class SummarizationEvalIT {

	@TempDir
	Path output;

	@Test
	void scoresTwoPromptsAndResumes() throws Exception {
		List<SummarizationEval.Example> examples = SummarizationEval.read(Fixtures.path("xsum/two.jsonl"), 0);
		assertThat(examples).hasSize(2);
		assertThat(examples.get(0).prompt()).endsWith("Summarize the above article in 1 sentences.");
		PrintStream progress = new PrintStream(new ByteArrayOutputStream());
		try (LoadedModel model = LoadedModel.load(Fixtures.defaultModel(), ModelOptions.CPU_FLOAT32, (layers) -> {
		})) {
			SummarizationEval eval = new SummarizationEval(model, 12, false, 1234);
			for (String config : List.of("full", "topk:0.5", "magnitude:0.5")) {
				EvalConfiguration configuration = EvalConfiguration.parse(config);
				SummarizationEval.Summary summary = eval.run(configuration, examples, this.output, progress);
				Path results = this.output.resolve(configuration.name() + ".jsonl");
				assertThat(Files.readAllLines(results)).hasSize(2);
				assertThat(summary.examples()).isEqualTo(2);
				assertThat(summary.rouge1()).isBetween(0.0, 100.0);
				assertThat(summary.rougeL()).isLessThanOrEqualTo(summary.rouge1() + 1e-9);
				// resuming generates nothing new and reports the same scores
				SummarizationEval.Summary again = eval.run(configuration, examples, this.output, progress);
				assertThat(Files.readAllLines(results)).hasSize(2);
				assertThat(again).isEqualTo(summary);
			}
		}
	}

}

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

/**
 * The eval on 2 one-shot XSum prompts with a small token budget, and its resumption; the
 * chat format on the same prompts.
 */
class SummarizationEvalIT {

	private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

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
			SummarizationEval eval = new SummarizationEval(model, 12, false, 1234, false);
			for (String config : List.of("full", "topk:0.5", "magnitude:0.5")) {
				EvalConfiguration configuration = EvalConfiguration.parse(config);
				SummarizationEval.Summary summary = eval.run(configuration, examples, this.output, progress);
				Path results = this.output.resolve(configuration.name() + ".jsonl");
				assertThat(Files.readAllLines(results)).hasSize(2);
				assertThat(summary.examples()).isEqualTo(2);
				assertThat(summary.rouge1()).isBetween(0.0, 100.0);
				assertThat(summary.rougeL()).isLessThanOrEqualTo(summary.rouge1() + 1e-9);
				assertThat(summary.speed().examples()).isEqualTo(2);
				assertThat(summary.speed().decodeTokensPerSecond()).isPositive();
				assertThat(summary.speed().promptTokensPerSecond()).isPositive();
				// resuming generates nothing new and reports the same scores
				SummarizationEval.Summary again = eval.run(configuration, examples, this.output, progress);
				assertThat(Files.readAllLines(results)).hasSize(2);
				assertThat(again).isEqualTo(summary);
			}
			// the chat format: the article alone in the model's template, far shorter
			// than
			// the one-shot prompt
			SummarizationEval chat = new SummarizationEval(model, 12, true, 1234, true);
			Path chatOutput = this.output.resolve("chat");
			SummarizationEval.Summary summary = chat.run(EvalConfiguration.parse("full"), examples, chatOutput,
					progress);
			assertThat(summary.examples()).isEqualTo(2);
			List<String> rows = Files.readAllLines(chatOutput.resolve("full.jsonl"));
			List<String> oneShot = Files.readAllLines(this.output.resolve("full.jsonl"));
			for (int i = 0; i < 2; i++) {
				int chatTokens = JSON.readTree(rows.get(i)).get("promptTokens").asInt();
				int oneShotTokens = JSON.readTree(oneShot.get(i)).get("promptTokens").asInt();
				assertThat(chatTokens).isLessThan(oneShotTokens);
				int[] expected = model.tokenizer()
					.encodeChat(List.of(new dev.griffin.serve.tokenizer.ChatTemplate.Message("user",
							SummarizationEval.article(examples.get(i).prompt()) + "\n\n"
									+ SummarizationEval.CHAT_INSTRUCTION)),
							true, false);
				assertThat(chatTokens).isEqualTo(expected.length);
			}
		}
	}

}

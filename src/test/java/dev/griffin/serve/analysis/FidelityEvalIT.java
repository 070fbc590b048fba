package dev.griffin.serve.analysis;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The fidelity measure on the default model: the full model scored against itself, and
 * GRIFFIN at 0.5 against it, on an XSum prompt and a chat question; the article in the
 * chat format too.
 */
class FidelityEvalIT {

	@TempDir
	Path directory;

	@Test
	void theFullModelFollowsItselfAndGriffinDivergesALittle() throws Exception {
		Path input = this.directory.resolve("prompts.jsonl");
		Files.writeString(input, Files.readAllLines(Fixtures.path("xsum/two.jsonl")).get(0) + "\n"
				+ "{\"question\": \"What is the capital of France?\"}\n");
		PrintStream progress = new PrintStream(new ByteArrayOutputStream());
		try (LoadedModel model = LoadedModel.load(Fixtures.defaultModel(), ModelOptions.CPU_FLOAT32, (layers) -> {
		})) {
			List<int[]> prompts = FidelityEval.prompts(input, 0, model);
			assertThat(prompts).hasSize(2);
			assertThat(prompts.get(0).length).as("the article's prompt").isGreaterThan(100);
			// in the chat format the article is asked for as the summarisation evaluation
			// asks; a question is a chat message either way
			List<int[]> chat = FidelityEval.prompts(input, 0, model, true);
			String article = new ObjectMapper().readTree(Files.readAllLines(Fixtures.path("xsum/two.jsonl")).get(0))
				.get("article")
				.asText();
			assertThat(chat.get(0)).isEqualTo(SummarizationEval.chatPrompt(model, article))
				.isNotEqualTo(prompts.get(0));
			assertThat(chat.get(1)).isEqualTo(prompts.get(1));
			List<FidelityEval.Summary> summaries = new FidelityEval(model, 12).run(prompts,
					List.of(EvalConfiguration.parse("full"), EvalConfiguration.parse("topk:0.5")),
					this.directory.resolve("out"), progress);
			FidelityEval.Summary full = summaries.get(0);
			assertThat(full.kl()).isLessThan(1e-6);
			assertThat(full.agreement()).isEqualTo(1.0);
			assertThat(full.tokens()).isBetween(2, 24);
			FidelityEval.Summary half = summaries.get(1);
			assertThat(half.kl()).as("GRIFFIN 0.5 reads other weights").isGreaterThan(1e-3);
			assertThat(half.agreement()).isBetween(0.0, 1.0);
			assertThat(half.tokens()).isEqualTo(full.tokens());
			assertThat(Files.readAllLines(this.directory.resolve("out/griffin-0.5.jsonl"))).hasSize(2);
			// the question's reply ends within 12 tokens; the full model ends it where it
			// does
			assertThat(full.ends()).isEqualTo(half.ends()).isBetween(1, 2);
			assertThat(full.endAgreement()).isEqualTo(1.0);
			assertThat(full.endLogprob()).isLessThanOrEqualTo(0.0);
			assertThat(half.endAgreement()).isBetween(0.0, 1.0);
			assertThat(half.endLogprob()).isLessThanOrEqualTo(0.0);
		}
	}

}

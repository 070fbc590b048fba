package dev.griffin.serve.analysis;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The question evaluation on the default model: three questions through the chat
 * template, with and without a context before them.
 */
class QuestionEvalIT {

	private static final ObjectMapper JSON = new ObjectMapper();

	@TempDir
	Path output;

	@Test
	void theFullModelAnswersAndEveryConfigurationWritesItsReplies() throws Exception {
		List<QuestionEval.Question> questions = List.of(
				new QuestionEval.Question(0, "What is the capital of France? Answer in one word.", List.of("Paris")),
				new QuestionEval.Question(1, "What is the capital of Japan? Answer in one word.", List.of("Tokyo")),
				new QuestionEval.Question(2, "What is the chemical symbol for gold?", List.of("Au")));
		PrintStream progress = new PrintStream(new ByteArrayOutputStream());
		try (LoadedModel model = LoadedModel.load(Fixtures.defaultModel(), ModelOptions.CPU_FLOAT32, (layers) -> {
		})) {
			QuestionEval plain = new QuestionEval(model, 16, null, 0);
			QuestionEval.Summary full = plain.run(EvalConfiguration.parse("full"), questions, this.output, progress);
			assertThat(full.right()).as("the dense model knows both capitals").contains(0, 1);
			assertThat(full.meanDensity()).isEqualTo(1.0);
			assertThat(full.speed().examples()).isEqualTo(3);
			assertThat(full.speed().decodeTokensPerSecond()).isPositive();
			List<JsonNode> rows = rows("full");
			assertThat(rows).hasSize(3);
			assertThat(rows.get(0).get("reply").asText()).contains("Paris");
			int promptTokens = rows.get(0).get("promptTokens").asInt();

			// dense below one token more than the first prompt: that question runs dense
			EvalConfiguration rule = EvalConfiguration.parse("topk:0.5:" + (promptTokens + 1));
			plain.run(rule, questions, this.output, progress);
			JsonNode first = rows(rule.name()).get(0);
			assertThat(first.get("density").asDouble()).isEqualTo(1.0);
			assertThat(first.get("reply").asText()).isEqualTo(rows.get(0).get("reply").asText());

			QuestionEval.Summary half = plain.run(EvalConfiguration.parse("topk:0.5"), questions, this.output,
					progress);
			assertThat(half.meanDensity()).isEqualTo(0.5);
			assertThat(half.speed().meanSelectionMs()).as("selection takes time; the dense model has none to do")
				.isGreaterThan(full.speed().meanSelectionMs());
			assertThat(half.kept(full)).isBetween(0.0, 1.0);

			String text = "The river flows through the old town, past the market and the mill, and on to the sea. ";
			QuestionEval withContext = new QuestionEval(model, 16, text.repeat(20), 64);
			QuestionEval.Summary longer = withContext.run(EvalConfiguration.parse("full"), questions,
					this.output.resolve("context"), progress);
			// the context's system turn replaces the template's default system message
			// (SmolLM2's is about 16 tokens)
			assertThat(longer.meanPromptTokens()).as("64 tokens of context in a system turn")
				.isGreaterThan(full.meanPromptTokens() + 32);
		}
	}

	private List<JsonNode> rows(String configuration) throws Exception {
		return Files.readAllLines(this.output.resolve(configuration + ".jsonl")).stream().map((line) -> {
			try {
				return JSON.readTree(line);
			}
			catch (Exception ex) {
				throw new IllegalStateException(ex);
			}
		}).toList();
	}

}

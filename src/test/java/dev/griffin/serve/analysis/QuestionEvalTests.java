package dev.griffin.serve.analysis;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.griffin.DefaultDensity;
import dev.griffin.serve.griffin.SelectionMethod;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Scoring of short answers, the question file, the configurations and their summaries.
 */
class QuestionEvalTests {

	@TempDir
	Path directory;

	@Test
	void anAnswerCountsAsWholeWordsIgnoringCaseAccentsAndPunctuation() {
		assertThat(QuestionEval.answers("The capital of France is Paris.", List.of("Paris"))).isTrue();
		assertThat(QuestionEval.answers("PARIS!", List.of("Paris"))).isTrue();
		assertThat(QuestionEval.answers("Parisian food", List.of("Paris"))).as("a longer word").isFalse();
		assertThat(QuestionEval.answers("It is 14.", List.of("4", "four"))).as("a longer number").isFalse();
		assertThat(QuestionEval.answers("2 + 2 = 4", List.of("4", "four"))).isTrue();
		assertThat(QuestionEval.answers("It is Four.", List.of("4", "four"))).isTrue();
		assertThat(QuestionEval.answers("It's twenty-five", List.of("25", "twenty-five"))).isTrue();
		assertThat(QuestionEval.answers("Water is H₂O", List.of("H2O"))).as("compatibility forms").isTrue();
		assertThat(QuestionEval.answers("Bogotá", List.of("Bogota"))).as("accents").isTrue();
		assertThat(QuestionEval.answers("Leonardo da Vinci", List.of("da Vinci"))).as("several words").isTrue();
		assertThat(QuestionEval.answers("South Africa", List.of("South America"))).isFalse();
		assertThat(QuestionEval.answers("", List.of("Paris"))).isFalse();
	}

	@Test
	void readsQuestionsAndRejectsALineWithoutAnswers() throws Exception {
		Path file = this.directory.resolve("q.jsonl");
		Files.writeString(file, """
				{"question": "What is 2 plus 2?", "answers": ["4", "four"]}

				{"question": "What is the capital of France?", "answers": ["Paris"]}
				""");
		List<QuestionEval.Question> questions = QuestionEval.read(file, 0);
		assertThat(questions).containsExactly(new QuestionEval.Question(0, "What is 2 plus 2?", List.of("4", "four")),
				new QuestionEval.Question(1, "What is the capital of France?", List.of("Paris")));
		assertThat(QuestionEval.read(file, 1)).hasSize(1);
		Files.writeString(file, "{\"question\": \"Why?\", \"answers\": []}\n");
		assertThatThrownBy(() -> QuestionEval.read(file, 0)).hasMessageContaining("line 1")
			.hasMessageContaining("answers");
	}

	@Test
	void theProjectsQuestionSetIsWellFormed() throws Exception {
		List<QuestionEval.Question> questions = QuestionEval.read(Path.of("docs/eval/short-questions.jsonl"), 0);
		assertThat(questions).hasSizeGreaterThanOrEqualTo(80);
		assertThat(questions.stream().map(QuestionEval.Question::question).distinct()).hasSize(questions.size());
		for (QuestionEval.Question question : questions) {
			assertThat(question.answers()).allSatisfy((answer) -> assertThat(QuestionEval.words(answer)).isNotEmpty());
		}
	}

	private static final EvalSpeed UNTIMED = EvalSpeed.of(List.of());

	@Test
	void keptCountsTheReferencesRightAnswersOnly() {
		QuestionEval.Summary full = new QuestionEval.Summary("full", 5, List.of(0, 1, 2, 3), 40, 1, UNTIMED);
		QuestionEval.Summary other = new QuestionEval.Summary("griffin-0.5", 5, List.of(0, 2, 4), 40, 0.5, UNTIMED);
		assertThat(other.kept(full)).isEqualTo(0.5);
		assertThat(other.lost(full)).containsExactly(1, 3);
		assertThat(full.kept(full)).isEqualTo(1.0);
		assertThat(other.kept(new QuestionEval.Summary("none", 5, List.of(), 40, 1, UNTIMED))).isNaN();
	}

	@Test
	void configurationsNameTheirRule() {
		assertThat(EvalConfiguration.parse("full"))
			.isEqualTo(new EvalConfiguration("full", new DefaultDensity(1.0, 0), SelectionMethod.TOPK));
		assertThat(EvalConfiguration.parse("default"))
			.isEqualTo(new EvalConfiguration("default", DefaultDensity.SERVER, SelectionMethod.DELAYED));
		EvalConfiguration rule = EvalConfiguration.parse("topk:0.75:96");
		assertThat(rule.name()).isEqualTo("griffin-0.75-dense-below-96");
		assertThat(rule.densityFor(95)).isEqualTo(1.0);
		assertThat(rule.densityFor(96)).isEqualTo(0.75);
		assertThat(EvalConfiguration.parse("magnitude:0.5").name()).isEqualTo("magnitude-0.5");
		assertThat(EvalConfiguration.parse("magnitude:0.5").densityFor(1)).isEqualTo(0.5);
		assertThatThrownBy(() -> EvalConfiguration.parse("topk")).hasMessageContaining("method:density");
		assertThatThrownBy(() -> EvalConfiguration.parse("topk:1.5")).hasMessageContaining("density");
		assertThatThrownBy(() -> EvalConfiguration.parse("topk:0.5:-3")).hasMessageContaining(">= 0");
	}

}

package dev.griffin.serve.analysis;

import java.util.List;

import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The chat format's article: the one a one-shot prompt asks to summarise. */
class SummarizationEvalTests {

	@Test
	void theArticleIsTheLastOfTheOneShotPrompt() throws Exception {
		List<SummarizationEval.Example> examples = SummarizationEval.read(Fixtures.path("xsum/two.jsonl"), 0);
		for (SummarizationEval.Example example : examples) {
			String prompt = example.prompt();
			String article = SummarizationEval.article(prompt);
			// the shot's article and summary come before it, the instruction after it
			assertThat(prompt.indexOf(article)).isEqualTo(prompt.lastIndexOf("Article: ") + "Article: ".length());
			assertThat(article).doesNotContain("###", "Article: ", "Summarize the above article")
				.isEqualTo(article.strip())
				.hasSizeGreaterThan(200);
		}
		assertThat(SummarizationEval.article("###\nArticle: one.\n\nSummarize the above article in 1 sentence.\nOne."
				+ "\n\n###\nArticle: two\nlines.\n\nSummarize the above article in 1 sentences."))
			.isEqualTo("two\nlines.");
	}

	@Test
	void aPromptOutsideTheFormatIsRefused() {
		for (String prompt : List.of("", "Summarize the above article in 1 sentences.", "Article: no instruction",
				"Summarize the above article first. Article: then the text")) {
			assertThatThrownBy(() -> SummarizationEval.article(prompt)).as(prompt)
				.isInstanceOf(IllegalArgumentException.class)
				.hasMessageContaining("not a one-shot XSum prompt");
		}
	}

}

package dev.griffin.serve.tokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Where a Hugging Face directory keeps its chat template: in
 * {@code tokenizer_config.json} (a string, or a list of named templates), in
 * {@code chat_template.jinja} (transformers 5 writes it there) or in
 * {@code chat_template.json} (multimodal processors write it there); the config's wins.
 */
class HuggingFaceChatTemplateTests {

	private static final List<ChatTemplate.Message> HELLO = List.of(new ChatTemplate.Message("user", "hi"));

	@TempDir
	Path directory;

	private String rendered() {
		try (Tokenizer tokenizer = Tokenizer.fromHuggingFace(this.directory)) {
			ChatTemplate template = tokenizer.chatTemplate();
			return (template == null) ? null : template.render(HELLO, false);
		}
	}

	@Test
	void theTemplateIsFoundInEachPlaceTransformersWritesIt() throws IOException {
		Fixtures.byteTokenizer(this.directory).close();
		assertThat(rendered()).as("no template anywhere").isNull();

		Files.writeString(this.directory.resolve("chat_template.json"),
				"{\"chat_template\": \"json:{{ messages[0]['content'] }}\"}");
		assertThat(rendered()).isEqualTo("json:hi");

		Files.writeString(this.directory.resolve("chat_template.jinja"), "jinja:{{ messages[0]['content'] }}");
		assertThat(rendered()).isEqualTo("jinja:hi");

		Files.writeString(this.directory.resolve("tokenizer_config.json"),
				"{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"tools\"},"
						+ " {\"name\": \"default\", \"template\": \"named:{{ messages[0]['content'] }}\"}]}");
		assertThat(rendered()).isEqualTo("named:hi");

		Files.writeString(this.directory.resolve("tokenizer_config.json"),
				"{\"chat_template\": \"config:{{ messages[0]['content'] }}\"}");
		assertThat(rendered()).isEqualTo("config:hi");
	}

}

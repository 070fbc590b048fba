package dev.griffin.serve.tokenizer;

import java.util.List;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The sandbox: messages are data, templates reach nothing outside themselves, and every
 * bound holds.
 */
class ChatTemplateTests {

	private static final String CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
			+ "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
			+ "{{ '<|im_start|>assistant\\n' }}{% endif %}";

	private static String render(String template, String content) {
		return new ChatTemplate(template, "<s>", "</s>").render(List.of(new ChatTemplate.Message("user", content)),
				true);
	}

	@Test
	void messageContentIsNeverInterpreted() {
		for (String content : List.of("{{ 7*7 }}", "{% include 'application.yaml' %}", "{{ '{{ 7*7 }}' }}",
				"{% for i in range(10) %}x{% endfor %}", "{{ bos_token }}", "{# comment", "{{", "%}")) {
			assertThat(render(CHATML, content)).as(content)
				.isEqualTo("<|im_start|>user\n" + content + "<|im_end|>\n<|im_start|>assistant\n");
		}
	}

	@Test
	void templatesCannotIncludeImportOrExtend() {
		for (String template : List.of("{% include 'application.yaml' %}", "{% import 'application.yaml' as x %}",
				"{% from 'application.yaml' import x %}", "{% extends 'application.yaml' %}")) {
			String output;
			try {
				output = render(template, "hi");
			}
			catch (ChatTemplate.RenderException ex) {
				continue;
			}
			assertThat(output).as(template).doesNotContain("griffin").doesNotContain("server");
		}
	}

	/**
	 * As Jinja renders them (outputs of jinja2 with trim_blocks and lstrip_blocks):
	 * <code>{{-</code> and <code>-}}</code> trim around expressions and notes, as Qwen2's
	 * indented template needs; a minus inside an expression stays arithmetic.
	 */
	@Test
	void whitespaceControlFollowsJinja() {
		assertThat(render("a\n    {{- 'b' }}\n    {%- if true %}\n        {{- ' c' -}}\n    {% endif %}\n  d", "hi"))
			.isEqualTo("ab c  d");
		assertThat(render("{{ 1 - 1 }}|{{ -1 }}|{{ 2 + 3 * 4 }}", "hi")).isEqualTo("0|-1|14");
		assertThat(render("x {#- note -#} y", "hi")).isEqualTo("xy");
	}

	@Test
	void outputAndLoopsAreBounded() {
		// jinjava cuts a range at its limit (10,000) rather than failing
		assertThat(render("{% for i in range(100000000) %}xxxxxxxxxx{% endfor %}", "hi")).hasSize(100_000);
		assertThatThrownBy(() -> render(
				"{% for i in range(10000) %}{% for j in range(10000) %}{{ messages[0].content }}{% endfor %}{% endfor %}",
				"x".repeat(1000)))
			.isInstanceOf(ChatTemplate.RenderException.class);
	}

}

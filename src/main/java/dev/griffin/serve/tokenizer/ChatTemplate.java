package dev.griffin.serve.tokenizer;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;

/**
 * A checkpoint's Jinja chat template rendered with jinjava, configured as Hugging Face
 * renders templates ({@code trim_blocks} and {@code lstrip_blocks} on).
 */
public final class ChatTemplate {

	/** One chat message. */
	public record Message(String role, String content) {

		public Message {
			if (role == null || role.isBlank()) {
				throw new IllegalArgumentException("a message needs a role");
			}
			content = (content != null) ? content : "";
		}

	}

	private final String template;

	private final String bosToken;

	private final String eosToken;

	private final Jinjava jinjava = new Jinjava(
			JinjavaConfig.newBuilder().withTrimBlocks(true).withLstripBlocks(true).build());

	public ChatTemplate(String template, String bosToken, String eosToken) {
		if (template == null || template.isBlank()) {
			throw new IllegalArgumentException("empty chat template");
		}
		this.template = template;
		this.bosToken = (bosToken != null) ? bosToken : "";
		this.eosToken = (eosToken != null) ? eosToken : "";
	}

	public String render(List<Message> messages, boolean addGenerationPrompt) {
		Map<String, Object> context = new HashMap<>();
		context.put("messages",
				messages.stream().map((m) -> Map.of("role", m.role(), "content", m.content())).toList());
		context.put("add_generation_prompt", addGenerationPrompt);
		context.put("bos_token", this.bosToken);
		context.put("eos_token", this.eosToken);
		RenderResult result = this.jinjava.renderForResult(this.template, context);
		List<TemplateError> fatal = result.getErrors()
			.stream()
			.filter((e) -> e.getSeverity() == TemplateError.ErrorType.FATAL)
			.toList();
		if (!fatal.isEmpty()) {
			throw new IllegalArgumentException("chat template failed: " + fatal.get(0).getMessage());
		}
		return result.getOutput();
	}

}

package dev.griffin.serve.tokenizer;

import java.io.IOException;
import java.nio.charset.Charset;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.loader.ResourceLocator;
import com.hubspot.jinjava.loader.ResourceNotFoundException;

/**
 * A checkpoint's Jinja chat template rendered with jinjava, configured as Hugging Face
 * renders templates ({@code trim_blocks} and {@code lstrip_blocks} on, <code>{{-</code>
 * and <code>-}}</code> trimming around expressions), in a sandbox: messages are data.
 * Text that comes out of a variable is never interpreted again (no nested
 * interpretation), templates cannot include, import or extend anything nor load any
 * resource, and output, strings, lists, ranges and rendering time are bounded.
 */
public final class ChatTemplate {

	/** The longest rendered prompt, in characters (the request body limit is smaller). */
	static final long MAX_OUTPUT = 4L << 20;

	/** The longest a template may render before it is stopped, in milliseconds. */
	static final long MAX_RENDER_MILLIS = 2_000;

	/** One chat message. */
	public record Message(String role, String content) {

		public Message {
			if (role == null || role.isBlank()) {
				throw new IllegalArgumentException("a message needs a role");
			}
			content = (content != null) ? content : "";
		}

	}

	/** A template that failed, exceeded a bound, or took too long for these messages. */
	public static final class RenderException extends IllegalArgumentException {

		RenderException(String message) {
			super(message);
		}

	}

	private static final ResourceLocator NO_RESOURCES = new ResourceLocator() {
		@Override
		public String getString(String name, Charset encoding, JinjavaInterpreter interpreter) throws IOException {
			throw new ResourceNotFoundException("chat templates cannot load resources");
		}
	};

	private final String template;

	private final String bosToken;

	private final String eosToken;

	private final Jinjava jinjava;

	public ChatTemplate(String template, String bosToken, String eosToken) {
		if (template == null || template.isBlank()) {
			throw new IllegalArgumentException("empty chat template");
		}
		this.template = template;
		this.bosToken = (bosToken != null) ? bosToken : "";
		this.eosToken = (eosToken != null) ? eosToken : "";
		this.jinjava = new Jinjava(JinjavaConfig.newBuilder()
			.withTrimBlocks(true)
			.withLstripBlocks(true)
			// as Jinja: {{- and -}} trim around expressions (Qwen2's template indents
			// its lines and trims them so), a '-' trims only right after the brace, and
			// operators bind as in Python
			.withLegacyOverrides(LegacyOverrides.newBuilder()
				.withUseTrimmingForNotesAndExpressions(true)
				.withParseWhitespaceControlStrictly(true)
				.withUseNaturalOperatorPrecedence(true)
				.build())
			.withNestedInterpretationEnabled(false)
			.withDisabled(Map.of(Context.Library.TAG, Set.of("include", "import", "from", "extends")))
			.withMaxOutputSize(MAX_OUTPUT)
			.withMaxStringLength(MAX_OUTPUT)
			.withMaxListSize(10_000)
			.withMaxMapSize(10_000)
			.withRangeLimit(10_000)
			.withEnableRecursiveMacroCalls(false)
			.withMaxRenderDepth(5)
			.withNodePreProcessor((node, interpreter) -> checkTime(interpreter))
			.build());
		this.jinjava.setResourceLocator(NO_RESOURCES);
	}

	private static final String STARTED = ChatTemplate.class.getName() + ".started";

	private static void checkTime(JinjavaInterpreter interpreter) {
		Object started = interpreter.getContext().get(STARTED);
		if (started instanceof Long nanos && System.nanoTime() - nanos > MAX_RENDER_MILLIS * 1_000_000) {
			throw new RenderException("the chat template took longer than " + MAX_RENDER_MILLIS + " ms to render");
		}
	}

	/**
	 * The prompt text of these messages.
	 * @throws RenderException when the template fails or exceeds a bound
	 */
	public String render(List<Message> messages, boolean addGenerationPrompt) {
		Map<String, Object> context = new HashMap<>();
		context.put("messages",
				messages.stream().map((m) -> Map.of("role", m.role(), "content", m.content())).toList());
		context.put("add_generation_prompt", addGenerationPrompt);
		context.put("bos_token", this.bosToken);
		context.put("eos_token", this.eosToken);
		context.put(STARTED, System.nanoTime());
		RenderResult result;
		try {
			result = this.jinjava.renderForResult(this.template, context);
		}
		catch (RenderException ex) {
			throw ex;
		}
		catch (RuntimeException ex) {
			throw new RenderException("the chat template failed: " + ex.getMessage());
		}
		List<TemplateError> fatal = result.getErrors()
			.stream()
			.filter((e) -> e.getSeverity() == TemplateError.ErrorType.FATAL)
			.toList();
		if (!fatal.isEmpty()) {
			throw new RenderException("the chat template failed: " + fatal.get(0).getMessage());
		}
		return result.getOutput();
	}

}

package dev.griffin.serve.web;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import dev.griffin.serve.config.GriffinProperties;
import dev.griffin.serve.generation.GriffinSettings;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.ModelService;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.tokenizer.ChatTemplate;
import dev.griffin.serve.web.ApiTypes.ChatMessage;
import dev.griffin.serve.web.ApiTypes.GriffinOptions;

/**
 * Validates request fields and turns them into engine types; every problem is an
 * {@link InvalidRequestException} that names the field.
 */
final class RequestMapper {

	private final GriffinProperties properties;

	RequestMapper(GriffinProperties properties) {
		this.properties = properties;
	}

	/** Sampling fields common to both endpoints. */
	record Sampling(Integer maxTokens, Double temperature, Double topP, Integer topK, Double minP,
			Double presencePenalty, Double frequencyPenalty, Double repetitionPenalty, Long seed, Object stop,
			Boolean ignoreEos) {

	}

	SamplingParams sampling(Sampling s, int promptTokens, int contextLength) {
		int maxTokens;
		if (s.maxTokens() != null) {
			require(s.maxTokens() >= 1, "max_tokens", "max_tokens must be at least 1, got " + s.maxTokens());
			int limit = this.properties.generation().maxTokensLimit();
			require(s.maxTokens() <= limit, "max_tokens",
					"max_tokens must be at most %d on this server, got %d".formatted(limit, s.maxTokens()));
			maxTokens = s.maxTokens();
		}
		else {
			GriffinProperties.Generation generation = this.properties.generation();
			int budget = Math.min(generation.defaultMaxTokens(), generation.maxTokensLimit());
			maxTokens = Math.max(1, Math.min(budget, contextLength - promptTokens));
		}
		// every range is checked once, by SamplingParams, which names the parameter
		int topK = (s.topK() == null || s.topK() == -1) ? 0 : s.topK();
		return new SamplingParams(orDefault(s.temperature(), 1.0), topK, orDefault(s.topP(), 1.0),
				orDefault(s.minP(), 0.0), orDefault(s.repetitionPenalty(), 1.0), orDefault(s.presencePenalty(), 0.0),
				orDefault(s.frequencyPenalty(), 0.0), s.seed(), maxTokens, stops(s.stop()), List.of(),
				Boolean.TRUE.equals(s.ignoreEos()));
	}

	private static List<String> stops(Object stop) {
		if (stop == null) {
			return List.of();
		}
		List<String> stops = new ArrayList<>();
		if (stop instanceof String text) {
			stops.add(text);
		}
		else if (stop instanceof List<?> list) {
			for (Object item : list) {
				require(item instanceof String, "stop", "stop must be a string or an array of strings");
				stops.add((String) item);
			}
		}
		else {
			throw new InvalidRequestException("stop", "stop must be a string or an array of strings");
		}
		return stops;
	}

	GriffinSettings griffin(GriffinOptions options) {
		double density = (options != null && options.density() != null) ? options.density()
				: this.properties.generation().defaultDensity();
		require(density >= 0 && density <= 1, "griffin.density", "griffin.density must be in [0, 1], got " + density);
		String method = (options != null && options.method() != null) ? options.method()
				: this.properties.generation().defaultMethod();
		try {
			return new GriffinSettings(density, SelectionMethod.parse(method));
		}
		catch (IllegalArgumentException ex) {
			throw new InvalidRequestException("griffin.method", ex.getMessage());
		}
	}

	static boolean useCache(GriffinOptions options) {
		return options == null || options.cache() == null || options.cache();
	}

	static int choices(Integer n) {
		int value = (n == null) ? 1 : n;
		require(value >= 1 && value <= 8, "n", "n must be in [1, 8], got " + value);
		return value;
	}

	/** Prompt text or token ids of a completion request. */
	static int[] prompt(Object prompt, LoadedModel model) {
		if (prompt instanceof String text) {
			require(!text.isEmpty(), "prompt", "prompt must not be empty");
			return model.tokenizer().encode(text);
		}
		if (prompt instanceof List<?> list && !list.isEmpty()) {
			if (list.size() == 1 && list.get(0) instanceof String text) {
				return prompt(text, model);
			}
			if (list.stream().allMatch((item) -> item instanceof Integer)) {
				int vocabulary = model.dense().config().vocabularySize();
				int[] ids = list.stream().mapToInt((item) -> (Integer) item).toArray();
				for (int id : ids) {
					require(id >= 0 && id < vocabulary, "prompt",
							"token id %d is outside the vocabulary [0, %d)".formatted(id, vocabulary));
				}
				return ids;
			}
			throw new InvalidRequestException("prompt",
					"prompt must be a string, an array with one string, or an array of token ids");
		}
		throw new InvalidRequestException("prompt", "prompt is required: a string or an array of token ids");
	}

	/**
	 * Token ids of chat messages rendered with the model's template; message content is
	 * data (see {@link dev.griffin.serve.tokenizer.Tokenizer#encodeChat}).
	 */
	int[] chat(List<ChatMessage> messages, LoadedModel model, boolean addGenerationPrompt) {
		require(messages != null && !messages.isEmpty(), "messages", "messages must be a non-empty array");
		ChatTemplate template = model.tokenizer().chatTemplate();
		if (template == null) {
			throw new InvalidRequestException("messages", "this model has no chat template; use /v1/completions");
		}
		List<ChatTemplate.Message> rendered = new ArrayList<>();
		for (int i = 0; i < messages.size(); i++) {
			ChatMessage message = messages.get(i);
			String field = "messages[" + i + "]";
			require(message != null, field, field + " must be an object");
			require(message.role() != null
					&& List.of("system", "user", "assistant", "developer", "tool").contains(message.role()),
					field + ".role", field + ".role must be one of system, user, assistant, developer, tool");
			rendered.add(new ChatTemplate.Message("developer".equals(message.role()) ? "system" : message.role(),
					content(message.content(), field + ".content")));
		}
		try {
			return model.tokenizer()
				.encodeChat(rendered, addGenerationPrompt, this.properties.security().controlTokensInContent());
		}
		catch (ChatTemplate.RenderException ex) {
			throw new InvalidRequestException("messages", ex.getMessage());
		}
	}

	private static String content(Object content, String field) {
		if (content == null) {
			return "";
		}
		if (content instanceof String text) {
			return text;
		}
		if (content instanceof List<?> parts) {
			StringBuilder text = new StringBuilder();
			for (Object part : parts) {
				require(part instanceof Map<?, ?> map && "text".equals(map.get("type"))
						&& map.get("text") instanceof String, field,
						field + " parts must be {\"type\": \"text\", \"text\": ...}");
				text.append((String) ((Map<?, ?>) part).get("text"));
			}
			return text.toString();
		}
		throw new InvalidRequestException(field, field + " must be a string or an array of text parts");
	}

	/**
	 * The served model a request names; a request that names none gets it too.
	 * @throws UnknownModelException for any other name
	 */
	static LoadedModel model(ModelService models, String name) {
		if (name != null && !models.modelIds().contains(name)) {
			throw new UnknownModelException(name);
		}
		return models.model();
	}

	static void require(boolean condition, String param, String message) {
		if (!condition) {
			throw new InvalidRequestException(param, message);
		}
	}

	private static double orDefault(Double value, double fallback) {
		return (value != null) ? value : fallback;
	}

}

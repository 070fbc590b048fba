package dev.griffin.serve.web;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.springframework.stereotype.Component;

import dev.griffin.serve.config.GriffinProperties;
import dev.griffin.serve.generation.ContextLengthExceededException;
import dev.griffin.serve.generation.GenerationJob;
import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.ModelService;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.GriffinSettings;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.tokenizer.ChatTemplate;
import dev.griffin.serve.web.ApiTypes.ChatCompletionRequest;
import dev.griffin.serve.web.ApiTypes.ChatMessage;
import dev.griffin.serve.web.ApiTypes.CompletionRequest;
import dev.griffin.serve.web.ApiTypes.GenerationFields;
import dev.griffin.serve.web.ApiTypes.GriffinOptions;
import dev.griffin.serve.web.ApiTypes.GriffinReport;
import dev.griffin.serve.web.ApiTypes.ResponseFormat;

/**
 * The one place that turns request fields into engine types. Each range lives in the type
 * that owns it ({@link SamplingParams}, {@link GenerationJob}, {@link GriffinSettings},
 * the context-length rule of {@link Generator}); this class applies the server's defaults
 * and limits and names the offending field: every problem is an
 * {@link InvalidRequestException} (or an
 * {@link dev.griffin.serve.generation.InvalidParameterException} from the owning type).
 */
@Component
final class RequestMapper {

	/** The roles a chat message may have (OpenAI's). */
	static final List<String> ROLES = List.of("system", "user", "assistant", "developer", "tool");

	/** Longest {@code cache_salt}. */
	static final int MAX_CACHE_SALT = 256;

	private final GriffinProperties properties;

	private final ModelService models;

	RequestMapper(GriffinProperties properties, ModelService models) {
		this.properties = properties;
		this.models = models;
	}

	/**
	 * A validated job and how to report its GRIFFIN settings.
	 *
	 * @param ownCache whether the request's cache entries are its own (an API key or a
	 * cache_salt); only then is a cache hit reported, so nobody learns what another
	 * client sent
	 */
	record Mapped(GenerationJob job, boolean ownCache) {

		GriffinReport report(boolean cacheHit) {
			GriffinSettings griffin = this.job.griffin();
			return new GriffinReport(griffin.density(), griffin.isDense() ? "dense" : griffin.method().wireName(),
					this.ownCache ? cacheHit : null);
		}

	}

	/**
	 * The job of a completion request.
	 * @param context the model's context length
	 * @param vocabulary the model's vocabulary size (its logits)
	 * @param maxTokens the request's token budget, null for the server's default
	 * @param topLogprobs -1 for none, else alternatives per token
	 * @param promptField the field that holds the prompt ("prompt" or "messages")
	 * @param tenant the request's API key, null without keys
	 */
	Mapped job(GenerationFields request, int[] prompt, int context, int vocabulary, Integer maxTokens, int topLogprobs,
			String promptField, String tenant) {
		return job(request, prompt, context, vocabulary, maxTokens, topLogprobs, promptField, tenant, false,
				(request.n() != null) ? request.n() : 1);
	}

	/**
	 * {@link #job(GenerationFields, int[], int, int, Integer, int, String, String)} with
	 * {@code choices} sequences (a completion's best_of), whose prompt is scored too when
	 * {@code scorePrompt} ({@link GenerationJob#scorePrompt}: run, never from the prompt
	 * cache).
	 */
	Mapped job(GenerationFields request, int[] prompt, int context, int vocabulary, Integer maxTokens, int topLogprobs,
			String promptField, String tenant, boolean scorePrompt, int choices) {
		SamplingParams params = sampling(request, maxTokens, prompt.length, context, vocabulary);
		try {
			Generator.checkContextLength(prompt.length, params.maxNewTokens(), context);
		}
		catch (ContextLengthExceededException ex) {
			throw new InvalidRequestException(promptField, ex.getMessage(), "context_length_exceeded");
		}
		String cacheSalt = request.cacheSalt();
		GriffinOptions griffinOptions = request.griffin();
		require(cacheSalt == null || (!cacheSalt.isEmpty() && cacheSalt.length() <= MAX_CACHE_SALT), "cache_salt",
				"cache_salt must be 1 to %d characters".formatted(MAX_CACHE_SALT));
		String tenantSalt = (tenant == null) ? null
				: this.properties.security().tenantSalts().getOrDefault(tenant, "key:" + tenant);
		String salt = (cacheSalt == null) ? tenantSalt
				: ((tenantSalt != null) ? tenantSalt : "") + "|salt:" + cacheSalt;
		boolean useCache = !scorePrompt
				&& (griffinOptions == null || griffinOptions.cache() == null || griffinOptions.cache());
		GenerationJob job = new GenerationJob(prompt, params, griffin(griffinOptions, prompt.length), choices,
				topLogprobs, useCache, salt, tenant, scorePrompt);
		return new Mapped(job, salt != null);
	}

	private SamplingParams sampling(GenerationFields s, Integer maxTokens, int promptTokens, int contextLength,
			int vocabulary) {
		int budget;
		if (maxTokens != null) {
			require(maxTokens >= 1, "max_tokens", "max_tokens must be at least 1, got " + maxTokens);
			int limit = maxTokensLimit(Integer.MAX_VALUE);
			require(maxTokens <= limit, "max_tokens",
					"max_tokens must be at most %d on this server, got %d".formatted(limit, maxTokens));
			budget = maxTokens;
		}
		else {
			int limit = maxTokensLimit(this.properties.generation().defaultMaxTokens());
			budget = Math.max(1, Math.min(limit, contextLength - promptTokens));
		}
		// every range is checked once, by SamplingParams, which names the parameter
		int topK = (s.topK() == null || s.topK() == -1) ? 0 : s.topK();
		return new SamplingParams(orDefault(s.temperature(), 1.0), topK, orDefault(s.topP(), 1.0),
				orDefault(s.minP(), 0.0), orDefault(s.repetitionPenalty(), 1.0), orDefault(s.presencePenalty(), 0.0),
				orDefault(s.frequencyPenalty(), 0.0), s.seed(), budget, stops(s.stop()),
				stopTokenIds(s.stopTokenIds(), vocabulary), Boolean.TRUE.equals(s.ignoreEos()),
				logitBias(s.logitBias(), vocabulary), (s.minTokens() != null) ? s.minTokens() : 0);
	}

	/** Most ids in {@code stop_token_ids}. */
	static final int MAX_STOP_TOKEN_IDS = 64;

	/** The ids of {@code stop_token_ids}, each in the vocabulary. */
	static List<Integer> stopTokenIds(List<Integer> ids, int vocabulary) {
		if (ids == null) {
			return List.of();
		}
		require(ids.size() <= MAX_STOP_TOKEN_IDS, "stop_token_ids",
				"stop_token_ids may hold at most %d ids, got %d".formatted(MAX_STOP_TOKEN_IDS, ids.size()));
		return Arrays.stream(tokenIds(ids, "stop_token_ids", vocabulary)).boxed().toList();
	}

	/**
	 * The token ids and biases of a {@code logit_bias} (JSON keys are strings); the
	 * ranges of the biases and their count are {@link SamplingParams}'s.
	 */
	static Map<Integer, Float> logitBias(Map<String, Double> biases, int vocabulary) {
		if (biases == null) {
			return Map.of();
		}
		Map<Integer, Float> out = new HashMap<>();
		for (Map.Entry<String, Double> bias : biases.entrySet()) {
			int id;
			try {
				id = Integer.parseInt(bias.getKey());
			}
			catch (NumberFormatException ex) {
				throw new InvalidRequestException("logit_bias", "logit_bias keys must be token ids");
			}
			require(id >= 0 && id < vocabulary, "logit_bias",
					"token id %d is outside the vocabulary [0, %d)".formatted(id, vocabulary));
			require(bias.getValue() != null, "logit_bias", "logit_bias values must be numbers");
			require(out.put(id, bias.getValue().floatValue()) == null, "logit_bias",
					"logit_bias names token %d twice".formatted(id));
		}
		return out;
	}

	/**
	 * Refuses the completion fields this server does not honour, rather than running the
	 * request without them.
	 */
	static void supported(CompletionRequest request) {
		supported((GenerationFields) request);
		boolean echo = Boolean.TRUE.equals(request.echo());
		refuse(echo && request.suffix() != null && !request.suffix().isEmpty(), "echo",
				"echo cannot be combined with suffix");
		int n = (request.n() != null) ? request.n() : 1;
		if (request.bestOf() != null) {
			int bestOf = request.bestOf();
			require(bestOf >= n && bestOf <= GenerationJob.MAX_CHOICES, "best_of",
					"best_of must be in [n, %d] (n is %d), got %d".formatted(GenerationJob.MAX_CHOICES, n, bestOf));
			require(bestOf == n || !Boolean.TRUE.equals(request.stream()), "best_of",
					"best_of greater than n cannot be streamed: the best are known only when all have finished");
		}
	}

	/**
	 * Refuses the chat fields this server does not honour (structured output, tool and
	 * function calls, audio), rather than running the request without them.
	 */
	static void supported(ChatCompletionRequest request) {
		supported((GenerationFields) request);
		ResponseFormat format = request.responseFormat();
		refuse(format != null && !"text".equals(format.type()), "response_format",
				"response_format is not supported beyond {\"type\": \"text\"}");
		refuse(request.tools() != null && !request.tools().isEmpty(), "tools", "tools are not supported");
		refuse(!offOrAuto(request.toolChoice()), "tool_choice", "tool_choice is not supported beyond none and auto");
		refuse(request.functions() != null && !request.functions().isEmpty(), "functions",
				"functions are not supported");
		refuse(!offOrAuto(request.functionCall()), "function_call",
				"function_call is not supported beyond none and auto");
		refuse(request.modalities() != null && !request.modalities().stream().allMatch("text"::equals), "modalities",
				"modalities are not supported beyond [\"text\"]");
		refuse(request.audio() != null, "audio", "audio output is not supported");
	}

	/**
	 * What either request may name: vLLM's structured outputs (refused), and
	 * {@code stream_options}, which only a stream may have (OpenAI's rule).
	 */
	private static void supported(GenerationFields request) {
		String guided = request.guidedField();
		refuse(guided != null, guided, guided + " (structured output) is not supported");
		require(request.streamOptions() == null || Boolean.TRUE.equals(request.stream()), "stream_options",
				"stream_options is only allowed when stream is true");
	}

	/**
	 * A tool or function choice that asks for no call: absent, none, or auto (with
	 * nothing to call).
	 */
	private static boolean offOrAuto(Object choice) {
		return choice == null || "none".equals(choice) || "auto".equals(choice);
	}

	private static void refuse(boolean unsupported, String param, String message) {
		if (unsupported) {
			throw new InvalidRequestException(param, message, "unsupported_parameter");
		}
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

	/**
	 * What the request asks of GRIFFIN; without a density, the server's default rule for
	 * a prompt of {@code promptTokens} tokens.
	 */
	GriffinSettings griffin(GriffinOptions options, int promptTokens) {
		String method = (options != null && options.method() != null) ? options.method()
				: this.properties.generation().defaultMethod();
		SelectionMethod selection;
		try {
			selection = SelectionMethod.parse(method);
		}
		catch (IllegalArgumentException ex) {
			throw new InvalidRequestException("griffin.method", ex.getMessage());
		}
		if (selection.usesPrior() && !this.models.model().supports(selection)) {
			throw new InvalidRequestException("griffin.method",
					"the %s method needs a neuron prior measured by the prior command, which model %s does not have"
						.formatted(selection.wireName(), this.models.modelId()));
		}
		double density = (options != null && options.density() != null) ? options.density()
				: this.properties.generation().defaultDensityRule().forPrompt(promptTokens);
		GriffinSettings settings = new GriffinSettings(density(density, "griffin.density"), selection);
		if (selection.spreadsDensity()) {
			try {
				this.models.model().schedule(settings.density(), selection);
			}
			catch (IllegalArgumentException ex) {
				throw new InvalidRequestException("griffin.density", "griffin.density: " + ex.getMessage());
			}
		}
		return settings;
	}

	/** The server's limit on generated tokens, and at most {@code endpointLimit}. */
	int maxTokensLimit(int endpointLimit) {
		return Math.min(endpointLimit, this.properties.generation().maxTokensLimit());
	}

	/** A density, checked by the one density rule, that names {@code field}. */
	static double density(double density, String field) {
		try {
			DensitySchedule.checkDensity(density);
			return density;
		}
		catch (IllegalArgumentException ex) {
			throw new InvalidRequestException(field, field + ": " + ex.getMessage());
		}
	}

	/**
	 * The token ids of one prompt of a completion request ({@link #prompts}), or with a
	 * non-empty suffix a fill-in-the-middle prompt of the prompt text and the suffix
	 * ({@link dev.griffin.serve.tokenizer.Tokenizer#encodeInfill}). An empty suffix is no
	 * suffix, as OpenAI's API treats it.
	 */
	static int[] prompt(Object prompt, String suffix, LoadedModel model) {
		if (suffix == null || suffix.isEmpty()) {
			return prompt(prompt, model);
		}
		refuse(!model.tokenizer().fillsInTheMiddle(), "suffix",
				"suffix needs a model with fill-in-the-middle tokens, and this model's vocabulary has none");
		if (!(prompt instanceof String prefix)) {
			throw new InvalidRequestException("prompt",
					"with a suffix, prompt must be text (a string or an array of strings), not token ids");
		}
		return model.tokenizer().encodeInfill(prefix, suffix);
	}

	/**
	 * The prompt as {@code echo} returns it: the text the request sent, or the text of
	 * its token ids (control tokens included).
	 */
	static String promptText(Object prompt, int[] ids, LoadedModel model) {
		return (prompt instanceof String text) ? text : model.tokenizer().decode(ids, false);
	}

	/**
	 * The prompts of a completion request, each a string or an array of token ids: the
	 * prompt itself, or each item of an array of strings or of token-id arrays.
	 */
	static List<Object> prompts(Object prompt) {
		if (prompt instanceof List<?> list && !list.isEmpty()
				&& (list.get(0) instanceof String || list.get(0) instanceof List<?>)) {
			require(list.stream().allMatch((item) -> item instanceof String)
					|| list.stream().allMatch((item) -> item instanceof List<?>), "prompt",
					"prompt must be a string, an array of token ids, or an array of strings or of token-id arrays, "
							+ "not a mix");
			return List.copyOf(list);
		}
		return Collections.singletonList(prompt);
	}

	/** One prompt's text or token ids ({@link #prompts}). */
	static int[] prompt(Object prompt, LoadedModel model) {
		if (prompt instanceof String text) {
			require(!text.isEmpty(), "prompt", "prompt must not be empty");
			return model.tokenizer().encode(text);
		}
		if (prompt instanceof List<?> list && !list.isEmpty()
				&& list.stream().allMatch((item) -> item instanceof Integer)) {
			return tokenIds(list, "prompt", model.dense().config().vocabularySize());
		}
		throw new InvalidRequestException("prompt", (prompt == null)
				? "prompt is required: a string or an array of token ids"
				: "prompt must be a string, an array of token ids, or an array of strings or of token-id arrays");
	}

	/**
	 * Token ids of chat messages rendered with the model's template; message content is
	 * data (see {@link dev.griffin.serve.tokenizer.Tokenizer#encodeChat}).
	 */
	int[] chat(List<ChatMessage> messages, LoadedModel model, boolean addGenerationPrompt) {
		List<ChatTemplate.Message> rendered = messages(messages);
		ChatTemplate template = model.tokenizer().chatTemplate();
		if (template == null) {
			throw new InvalidRequestException("messages", "this model has no chat template; use /v1/completions");
		}
		try {
			return model.tokenizer()
				.encodeChat(rendered, addGenerationPrompt, this.properties.security().controlTokensInContent());
		}
		catch (ChatTemplate.RenderException ex) {
			throw new InvalidRequestException("messages", ex.getMessage());
		}
	}

	/** Roles checked, {@code developer} as {@code system}, content parts joined. */
	static List<ChatTemplate.Message> messages(List<ChatMessage> messages) {
		require(messages != null && !messages.isEmpty(), "messages", "messages must be a non-empty array");
		List<ChatTemplate.Message> out = new ArrayList<>();
		for (int i = 0; i < messages.size(); i++) {
			ChatMessage message = messages.get(i);
			String field = "messages[" + i + "]";
			require(message != null, field, field + " must be an object");
			require(message.role() != null && ROLES.contains(message.role()), field + ".role",
					field + ".role must be one of " + String.join(", ", ROLES));
			// only an assistant's turn may have no content (OpenAI's rule)
			require(message.content() != null || "assistant".equals(message.role()), field + ".content",
					field + ".content is required for role " + message.role());
			out.add(new ChatTemplate.Message("developer".equals(message.role()) ? "system" : message.role(),
					content(message.content(), field + ".content")));
		}
		return out;
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
	 * Token ids in a vocabulary of {@code vocabulary} ids.
	 * @param field named in the error, with the index of a bad id
	 */
	static int[] tokenIds(List<?> ids, String field, int vocabulary) {
		int[] out = new int[ids.size()];
		for (int i = 0; i < out.length; i++) {
			String name = field + "[" + i + "]";
			require(ids.get(i) instanceof Integer, name, name + " must be an integer token id");
			int id = (Integer) ids.get(i);
			require(id >= 0 && id < vocabulary, name,
					"token id %d is outside the vocabulary [0, %d)".formatted(id, vocabulary));
			out[i] = id;
		}
		return out;
	}

	/**
	 * The served model a request names; a request that names none gets it too.
	 * @throws UnknownModelException for any other name
	 */
	LoadedModel model(String name) {
		if (name != null && !this.models.modelIds().contains(name)) {
			throw new UnknownModelException(name);
		}
		return this.models.model();
	}

	/** The served model, for the OpenAI endpoints, where {@code model} is required. */
	LoadedModel requiredModel(String name) {
		require(name != null && !name.isBlank(), "model", "model is required");
		return model(name);
	}

	/** The served model's id, as responses name it. */
	String modelId() {
		return this.models.modelId();
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

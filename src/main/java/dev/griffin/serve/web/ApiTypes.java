package dev.griffin.serve.web;

import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import io.swagger.v3.oas.annotations.media.Schema;

/** The OpenAI-compatible request and response bodies, as records. */
public final class ApiTypes {

	private ApiTypes() {
	}

	private static final String LOGIT_BIAS = "Token id (as a string) to a bias in [-100, 100] added to its logit "
			+ "before sampling; at most 300 tokens";

	private static final String STOP_TOKEN_IDS = "Token ids that end the reply like the model's end tokens, "
			+ "not included in it (vLLM extension); at most 64";

	private static final String MIN_TOKENS = "No end token, stop token or stop string ends the reply before this "
			+ "many tokens (vLLM extension); at most max_tokens";

	private static final String CACHE_SALT = "Salt of this request's expert-cache key (vLLM extension): only "
			+ "requests with the same salt share cached prompts, and cache_hit is reported only to requests with a "
			+ "salt of their own (an API key or this field)";

	/**
	 * GRIFFIN's extension of the request body (as vLLM accepts extra sampling fields).
	 */
	@JsonIgnoreProperties(ignoreUnknown = true)
	@Schema(description = "GRIFFIN settings; omitted fields take the server's defaults")
	public record GriffinOptions(
			@Schema(description = "Fraction of feed-forward neurons generation keeps; 1.0 is the dense model",
					example = "0.5", minimum = "0", maximum = "1") Double density,
			@Schema(description = "Expert selection method", allowableValues = {
					"topk", "topk_sample", "sample", "random", "magnitude", "wina", "glass", "layerwise", "delayed",
					"dense_start" }, example = "topk") String method,
			@Schema(description = "Use the expert cache for this request (default true)",
					example = "true") Boolean cache){

	}

	/** The first of vLLM's structured-output fields that a request holds, or null. */
	private static String guided(Object json, Object regex, Object choice, Object grammar, Object structured) {
		return (json != null) ? "guided_json" : (regex != null) ? "guided_regex" : (choice != null) ? "guided_choice"
				: (grammar != null) ? "guided_grammar" : (structured != null) ? "structured_outputs" : null;
	}

	@JsonIgnoreProperties(ignoreUnknown = true)
	@Schema(description = "The reply's format: only text is supported")
	public record ResponseFormat(@Schema(allowableValues = {
			"text" }, example = "text") String type){

	}

	@JsonIgnoreProperties(ignoreUnknown = true)
	public record StreamOptions(@JsonProperty("include_usage") Boolean includeUsage) {

	}

	/**
	 * What both completion requests ask of generation, read by {@link RequestMapper}.
	 */
	interface GenerationFields {

		Double temperature();

		Double topP();

		Integer topK();

		Double minP();

		Double presencePenalty();

		Double frequencyPenalty();

		Double repetitionPenalty();

		Long seed();

		Object stop();

		Integer n();

		GriffinOptions griffin();

		Boolean ignoreEos();

		String cacheSalt();

		Boolean stream();

		StreamOptions streamOptions();

		Map<String, Double> logitBias();

		List<Integer> stopTokenIds();

		Integer minTokens();

		/**
		 * The first of vLLM's structured-output fields (refused) that the request holds,
		 * or null.
		 */
		String guidedField();

		/** Whether a stream ends with a usage chunk. */
		default boolean includeUsage() {
			return streamOptions() != null && Boolean.TRUE.equals(streamOptions().includeUsage());
		}

	}

	@JsonIgnoreProperties(ignoreUnknown = true)
	@Schema(description = "A text completion request")
	public record CompletionRequest(
			@Schema(example = "SmolLM2-135M-Instruct", requiredMode = Schema.RequiredMode.REQUIRED) String model,
			@Schema(description = "Text or an array of token ids, or several prompts: an array of texts or of "
					+ "token-id arrays (up to 16; prompt i's choices are indices i x n to i x n + n - 1)",
					example = "The capital of France is", requiredMode = Schema.RequiredMode.REQUIRED, oneOf = {
							String.class, String[].class, Integer[].class, Integer[][].class }) Object prompt,
			@JsonProperty("max_tokens") @Schema(example = "16", minimum = "1") Integer maxTokens,
			@Schema(example = "0", minimum = "0", maximum = "2") Double temperature,
			@JsonProperty("top_p") @Schema(minimum = "0", maximum = "1") Double topP,
			@JsonProperty("top_k") @Schema(description = "-1 or 0 disables") Integer topK,
			@JsonProperty("min_p") @Schema(minimum = "0", maximum = "1") Double minP,
			@JsonProperty("presence_penalty") @Schema(minimum = "-2", maximum = "2") Double presencePenalty,
			@JsonProperty("frequency_penalty") @Schema(minimum = "-2", maximum = "2") Double frequencyPenalty,
			@JsonProperty("repetition_penalty") @Schema(minimum = "0.01", maximum = "10") Double repetitionPenalty,
			Long seed,
			@Schema(description = "A stop string or up to 4 of them",
					oneOf = { String.class, String[].class }) Object stop,
			@Schema(minimum = "1", maximum = "8") Integer n,
			@Schema(description = "Return this many most likely alternatives per token (0-5)", minimum = "0",
					maximum = "5") Integer logprobs,
			@Schema(example = "false") Boolean stream, @JsonProperty("stream_options") StreamOptions streamOptions,
			String user, GriffinOptions griffin,
			@JsonProperty("ignore_eos") @Schema(
					description = "Keep generating through end tokens (vLLM extension)") Boolean ignoreEos,
			@JsonProperty("cache_salt") @Schema(description = CACHE_SALT, maxLength = 256) String cacheSalt,
			@JsonProperty("logit_bias") @Schema(description = LOGIT_BIAS) Map<String, Double> logitBias,
			@JsonProperty("stop_token_ids") @Schema(description = STOP_TOKEN_IDS) List<Integer> stopTokenIds,
			@JsonProperty("min_tokens") @Schema(description = MIN_TOKENS, minimum = "0") Integer minTokens,
			@JsonProperty("guided_json") @Schema(hidden = true) Object guidedJson,
			@JsonProperty("guided_regex") @Schema(hidden = true) Object guidedRegex,
			@JsonProperty("guided_choice") @Schema(hidden = true) Object guidedChoice,
			@JsonProperty("guided_grammar") @Schema(hidden = true) Object guidedGrammar,
			@JsonProperty("structured_outputs") @Schema(hidden = true) Object structuredOutputs,
			@Schema(description = "Return the prompt before the completion, in each choice (streamed: as each "
					+ "choice's first chunk). With logprobs the prompt's tokens are scored too and come first in "
					+ "the logprobs, the first with null (the prompt is then run, not served from the prompt "
					+ "cache). Not with a suffix") Boolean echo,
			@Schema(description = "Text that comes after the completion: the prompt and the suffix make a "
					+ "fill-in-the-middle prompt, and the completion is what goes between them. Only for models "
					+ "whose vocabulary has fill-in-the-middle tokens (Qwen2.5-Coder's, StarCoder's); the prompt "
					+ "must then be text. Empty: no suffix", example = "\n\nprint(add(2, 3))\n") String suffix,
			@JsonProperty("best_of") @Schema(description = "Choices to generate, from n to 8; the n with the highest "
					+ "log-probability per token are returned (all count in usage). Greater than n: not streamed",
					minimum = "1", maximum = "8") Integer bestOf)
			implements
				GenerationFields{

		@Override
		public String guidedField() {
			return guided(this.guidedJson, this.guidedRegex, this.guidedChoice, this.guidedGrammar,
					this.structuredOutputs);
		}

	}

	@JsonIgnoreProperties(ignoreUnknown = true)
	public record ChatMessage(@Schema(example = "user", requiredMode = Schema.RequiredMode.REQUIRED) String role,
			@Schema(description = "Text, or an array of {type: text, text} parts",
					example = "What is the capital of France?", oneOf = {
							String.class, Object[].class }) Object content,
			String name){

	}

	@JsonIgnoreProperties(ignoreUnknown = true)
	@Schema(description = "A chat completion request")
	public record ChatCompletionRequest(
			@Schema(example = "SmolLM2-135M-Instruct", requiredMode = Schema.RequiredMode.REQUIRED) String model,
			@Schema(requiredMode = Schema.RequiredMode.REQUIRED) List<ChatMessage> messages,
			@JsonProperty("max_tokens") @Schema(example = "32", minimum = "1") Integer maxTokens,
			@JsonProperty("max_completion_tokens") @Schema(minimum = "1") Integer maxCompletionTokens,
			@Schema(example = "0", minimum = "0", maximum = "2") Double temperature,
			@JsonProperty("top_p") @Schema(minimum = "0", maximum = "1") Double topP,
			@JsonProperty("top_k") Integer topK,
			@JsonProperty("min_p") @Schema(minimum = "0", maximum = "1") Double minP,
			@JsonProperty("presence_penalty") @Schema(minimum = "-2", maximum = "2") Double presencePenalty,
			@JsonProperty("frequency_penalty") @Schema(minimum = "-2", maximum = "2") Double frequencyPenalty,
			@JsonProperty("repetition_penalty") @Schema(minimum = "0.01", maximum = "10") Double repetitionPenalty,
			Long seed, @Schema(oneOf = {
					String.class, String[].class }) Object stop,
			@Schema(minimum = "1", maximum = "8") Integer n, Boolean logprobs,
			@JsonProperty("top_logprobs") @Schema(minimum = "0", maximum = "20") Integer topLogprobs,
			@Schema(example = "false") Boolean stream, @JsonProperty("stream_options") StreamOptions streamOptions,
			String user, GriffinOptions griffin,
			@JsonProperty("ignore_eos") @Schema(
					description = "Keep generating through end tokens (vLLM extension)") Boolean ignoreEos,
			@JsonProperty("cache_salt") @Schema(description = CACHE_SALT, maxLength = 256) String cacheSalt,
			@JsonProperty("logit_bias") @Schema(description = LOGIT_BIAS) Map<String, Double> logitBias,
			@JsonProperty("stop_token_ids") @Schema(description = STOP_TOKEN_IDS) List<Integer> stopTokenIds,
			@JsonProperty("min_tokens") @Schema(description = MIN_TOKENS, minimum = "0") Integer minTokens,
			@JsonProperty("guided_json") @Schema(hidden = true) Object guidedJson,
			@JsonProperty("guided_regex") @Schema(hidden = true) Object guidedRegex,
			@JsonProperty("guided_choice") @Schema(hidden = true) Object guidedChoice,
			@JsonProperty("guided_grammar") @Schema(hidden = true) Object guidedGrammar,
			@JsonProperty("structured_outputs") @Schema(hidden = true) Object structuredOutputs,
			@JsonProperty("response_format") ResponseFormat responseFormat,
			@Schema(description = "Not supported: only empty") List<Object> tools,
			@JsonProperty("tool_choice") @Schema(description = "Not supported: only none or auto without tools",
					oneOf = { String.class, Object.class }) Object toolChoice,
			@Schema(description = "Not supported: only empty") List<Object> functions,
			@JsonProperty("function_call") @Schema(description = "Not supported: only none or auto without functions",
					oneOf = { String.class, Object.class }) Object functionCall,
			@Schema(description = "Not supported beyond [\"text\"]") List<String> modalities,
			@Schema(description = "Not supported: audio output") Object audio) implements GenerationFields{

		@Override
		public String guidedField() {
			return guided(this.guidedJson, this.guidedRegex, this.guidedChoice, this.guidedGrammar,
					this.structuredOutputs);
		}

	}

	public record Usage(@JsonProperty("prompt_tokens") int promptTokens,
			@JsonProperty("completion_tokens") int completionTokens, @JsonProperty("total_tokens") int totalTokens) {

		static Usage of(int promptTokens, int completionTokens) {
			return new Usage(promptTokens, completionTokens, promptTokens + completionTokens);
		}

	}

	/** What GRIFFIN did for this request. */
	public record GriffinReport(double density, String method,
			@JsonProperty("cache_hit") @JsonInclude(JsonInclude.Include.NON_NULL) @Schema(
					description = "Whether the expert cache supplied the prompt; only reported to a request whose "
							+ "cache entries are its own (an API key or a cache_salt)") Boolean cacheHit) {

	}

	public record CompletionLogprobs(List<String> tokens, @JsonProperty("token_logprobs") List<Float> tokenLogprobs,
			@JsonProperty("top_logprobs") List<Map<String, Float>> topLogprobs,
			@JsonProperty("text_offset") List<Integer> textOffset) {

	}

	public record CompletionChoice(int index, String text,
			@JsonInclude(JsonInclude.Include.NON_NULL) CompletionLogprobs logprobs,
			@JsonProperty("finish_reason") @Schema(types = {
					"string", "null" }) String finishReason,
			@JsonInclude(JsonInclude.Include.NON_NULL) @Schema(
					description = "What ran for this choice's prompt, in a whole response to several prompts "
							+ "(a stream reports it in each choice's last chunk)") GriffinReport griffin){

		public CompletionChoice(int index, String text, CompletionLogprobs logprobs, String finishReason) {
			this(index, text, logprobs, finishReason, null);
		}

	}

	@JsonInclude(JsonInclude.Include.NON_NULL)
	public record CompletionResponse(String id, String object, long created, String model,
			List<CompletionChoice> choices, Usage usage, GriffinReport griffin) {

	}

	public record TopLogprob(String token, float logprob, List<Integer> bytes) {

	}

	public record TokenLogprob(String token, float logprob, List<Integer> bytes,
			@JsonProperty("top_logprobs") List<TopLogprob> topLogprobs) {

	}

	public record ChatLogprobs(List<TokenLogprob> content) {

	}

	@JsonInclude(JsonInclude.Include.NON_NULL)
	public record AssistantMessage(String role, String content) {

	}

	public record ChatChoice(int index, AssistantMessage message,
			@JsonInclude(JsonInclude.Include.NON_NULL) ChatLogprobs logprobs,
			@JsonProperty("finish_reason") @Schema(types = {
					"string", "null" }) String finishReason){

	}

	@JsonInclude(JsonInclude.Include.NON_NULL)
	public record ChatCompletionResponse(String id, String object, long created, String model, List<ChatChoice> choices,
			Usage usage, GriffinReport griffin) {

	}

	public record ChatDelta(@JsonInclude(JsonInclude.Include.NON_NULL) String role,
			@JsonInclude(JsonInclude.Include.NON_NULL) String content) {

	}

	public record ChatChunkChoice(int index, ChatDelta delta,
			@JsonInclude(JsonInclude.Include.NON_NULL) ChatLogprobs logprobs,
			@JsonProperty("finish_reason") @Schema(types = {
					"string", "null" }) String finishReason){

	}

	@JsonInclude(JsonInclude.Include.NON_NULL)
	public record ChatCompletionChunk(String id, String object, long created, String model,
			List<ChatChunkChoice> choices, Usage usage, GriffinReport griffin) {

	}

	@JsonInclude(JsonInclude.Include.NON_NULL)
	public record CompletionChunk(String id, String object, long created, String model, List<CompletionChoice> choices,
			Usage usage, GriffinReport griffin) {

	}

	public record ModelCard(String id, String object, long created, @JsonProperty("owned_by") String ownedBy,
			@JsonProperty("max_model_len") int maxModelLen) {

	}

	public record ModelList(String object, List<ModelCard> data) {

	}

	@JsonIgnoreProperties(ignoreUnknown = true)
	public record TokenizeRequest(@Schema(example = "SmolLM2-135M-Instruct") String model,
			@Schema(example = "Hello, world!") String prompt, List<ChatMessage> messages,
			@JsonProperty("add_generation_prompt") Boolean addGenerationPrompt) {

	}

	public record TokenizeResponse(List<Integer> tokens, int count, @JsonProperty("max_model_len") int maxModelLen) {

	}

	@JsonIgnoreProperties(ignoreUnknown = true)
	public record DetokenizeRequest(@Schema(example = "SmolLM2-135M-Instruct") String model,
			@Schema(example = "[19556, 28, 905, 17]",
					requiredMode = Schema.RequiredMode.REQUIRED) List<Integer> tokens) {

	}

	public record DetokenizeResponse(String prompt) {

	}

	public record ErrorBody(String message, String type, @Schema(types = {
			"string", "null" }) String param, @Schema(types = { "string", "null" }) String code){

	}

	public record ErrorResponse(ErrorBody error) {

	}

}

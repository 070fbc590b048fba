package dev.griffin.serve.tokenizer;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import dev.griffin.serve.weights.CheckpointException;
import dev.griffin.serve.weights.GgufFile;

/**
 * Text to token ids and back, through DJL's binding of Hugging Face {@code tokenizers}. A
 * GGUF file's own vocabulary, merges, pre-tokenizer type and special tokens are turned
 * into the equivalent {@code tokenizer.json}; a Hugging Face directory's
 * {@code tokenizer.json} is used as it is.
 */
public final class Tokenizer implements AutoCloseable {

	private static final ObjectMapper JSON = new ObjectMapper();

	private static final int GGUF_CONTROL = 3;

	private static final int GGUF_USER_DEFINED = 4;

	private final HuggingFaceTokenizer tokenizer;

	private final byte[][] tokenBytes;

	private final boolean[] special;

	/** Texts of the special (control) tokens, longest first. */
	private final List<String> specialTexts;

	/** The vocabulary without special tokens: control-token text is plain text here. */
	private final HuggingFaceTokenizer plainTextTokenizer;

	private final ChatTemplate chatTemplate;

	private final int bosTokenId;

	private final boolean addBosToken;

	/**
	 * The control tokens of a fill-in-the-middle prompt, prefix, suffix and middle, or
	 * null when the vocabulary lacks them.
	 */
	private final int[] infillTokens;

	/**
	 * The texts of the fill-in-the-middle control tokens that models name (prefix,
	 * suffix, middle): Qwen2.5-Coder's, and StarCoder's.
	 */
	private static final List<List<String>> INFILL_TEXTS = List.of(
			List.of("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
			List.of("<fim_prefix>", "<fim_suffix>", "<fim_middle>"));

	private Tokenizer(JsonNode tokenizerJson, ChatTemplate chatTemplate, int bosTokenId, boolean addBosToken,
			String source) {
		try (InputStream in = new ByteArrayInputStream(JSON.writeValueAsBytes(tokenizerJson))) {
			this.tokenizer = HuggingFaceTokenizer.newInstance(in, Map.of("addSpecialTokens", "false", "truncation",
					"false", "padding", "false", "modelMaxLength", String.valueOf(Integer.MAX_VALUE)));
		}
		catch (IOException | RuntimeException ex) {
			throw new CheckpointException(source + ": cannot build the tokenizer: " + ex.getMessage(), ex);
		}
		JsonNode vocab = tokenizerJson.path("model").path("vocab");
		int size = 0;
		for (JsonNode id : vocab) {
			size = Math.max(size, id.asInt() + 1);
		}
		for (JsonNode added : tokenizerJson.path("added_tokens")) {
			size = Math.max(size, added.get("id").asInt() + 1);
		}
		this.tokenBytes = new byte[size][];
		this.special = new boolean[size];
		boolean byteLevel = "ByteLevel".equals(tokenizerJson.path("decoder").path("type").asText())
				|| tokenizerJson.path("pre_tokenizer").toString().contains("ByteLevel");
		for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext();) {
			Map.Entry<String, JsonNode> entry = it.next();
			this.tokenBytes[entry.getValue().asInt()] = pieceBytes(entry.getKey(), byteLevel);
		}
		for (JsonNode added : tokenizerJson.path("added_tokens")) {
			int id = added.get("id").asInt();
			this.tokenBytes[id] = added.get("content").asText().getBytes(StandardCharsets.UTF_8);
			this.special[id] = added.path("special").asBoolean(false);
		}
		for (int i = 0; i < size; i++) {
			if (this.tokenBytes[i] == null) {
				this.tokenBytes[i] = new byte[0];
			}
		}
		this.chatTemplate = chatTemplate;
		this.bosTokenId = bosTokenId;
		this.addBosToken = addBosToken;
		List<String> specials = new ArrayList<>();
		for (int i = 0; i < size; i++) {
			if (this.special[i] && this.tokenBytes[i].length > 0) {
				specials.add(new String(this.tokenBytes[i], StandardCharsets.UTF_8));
			}
		}
		specials.sort(Comparator.comparingInt(String::length).reversed());
		this.specialTexts = List.copyOf(specials);
		this.infillTokens = infillTokens(this.tokenBytes, this.special);
		ObjectNode plain = (ObjectNode) tokenizerJson.deepCopy();
		ArrayNode kept = plain.putArray("added_tokens");
		for (JsonNode added : tokenizerJson.path("added_tokens")) {
			if (!added.path("special").asBoolean(false)) {
				kept.add(added);
			}
		}
		try (InputStream in = new ByteArrayInputStream(JSON.writeValueAsBytes(plain))) {
			this.plainTextTokenizer = HuggingFaceTokenizer.newInstance(in, Map.of("addSpecialTokens", "false",
					"truncation", "false", "padding", "false", "modelMaxLength", String.valueOf(Integer.MAX_VALUE)));
		}
		catch (IOException | RuntimeException ex) {
			this.tokenizer.close();
			throw new CheckpointException(source + ": cannot build the plain-text tokenizer: " + ex.getMessage(), ex);
		}
	}

	/**
	 * The first set of {@link #INFILL_TEXTS} that are all control tokens here, or null.
	 */
	private static int[] infillTokens(byte[][] tokenBytes, boolean[] special) {
		Map<String, Integer> controls = new HashMap<>();
		for (int id = 0; id < tokenBytes.length; id++) {
			if (special[id]) {
				controls.putIfAbsent(new String(tokenBytes[id], StandardCharsets.UTF_8), id);
			}
		}
		for (List<String> texts : INFILL_TEXTS) {
			if (controls.keySet().containsAll(texts)) {
				return texts.stream().mapToInt(controls::get).toArray();
			}
		}
		return null;
	}

	/**
	 * Bytes of a vocabulary piece: byte-level text, or SentencePiece text with
	 * byte-fallback pieces.
	 */
	private static byte[] pieceBytes(String piece, boolean byteLevel) {
		if (byteLevel) {
			byte[] bytes = ByteLevel.decode(piece);
			if (bytes != null) {
				return bytes;
			}
		}
		if (piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">")) {
			return new byte[] { (byte) Integer.parseInt(piece.substring(3, 5), 16) };
		}
		return piece.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8);
	}

	/** Builds the tokenizer a GGUF file describes. */
	public static Tokenizer fromGguf(GgufFile file) {
		String model = file.string("tokenizer.ggml.model");
		String architecture = file.string("general.architecture");
		boolean gemma = architecture != null && architecture.startsWith("gemma");
		List<?> tokens = (List<?>) file.metadata().get("tokenizer.ggml.tokens");
		List<?> types = (List<?>) file.metadata().get("tokenizer.ggml.token_type");
		if ("llama".equals(model) && gemma) {
			if (tokens == null || types == null) {
				throw new CheckpointException(
						file.path() + ": missing tokenizer.ggml.tokens or tokenizer.ggml.token_type");
			}
			int unknown = number(file, "tokenizer.ggml.unknown_token_id", -1);
			if (unknown < 0) {
				throw new CheckpointException(file.path() + ": missing tokenizer.ggml.unknown_token_id");
			}
			List<String> pieces = tokens.stream().map(String.class::cast).toList();
			List<Integer> kinds = types.stream().map((type) -> ((Number) type).intValue()).toList();
			return withTemplate(GemmaVocabulary.tokenizerJson(pieces, kinds, pieces.get(unknown)), file, tokens);
		}
		if (!"gpt2".equals(model)) {
			throw new CheckpointException(
					"%s: tokenizer model '%s' is not supported (supported: gpt2 byte-level BPE, and Gemma's SentencePiece)"
						.formatted(file.path(), model));
		}
		List<?> merges = (List<?>) file.metadata().get("tokenizer.ggml.merges");
		if (tokens == null || merges == null) {
			throw new CheckpointException(file.path() + ": missing tokenizer.ggml.tokens or tokenizer.ggml.merges");
		}
		ObjectNode root = JSON.createObjectNode();
		root.put("version", "1.0");
		ArrayNode added = root.putArray("added_tokens");
		ObjectNode vocab = JSON.createObjectNode();
		for (int id = 0; id < tokens.size(); id++) {
			String token = (String) tokens.get(id);
			vocab.put(token, id);
			int type = (types != null) ? ((Number) types.get(id)).intValue() : 1;
			if (type == GGUF_CONTROL || type == GGUF_USER_DEFINED) {
				addedToken(added, id, token, type == GGUF_CONTROL);
			}
		}
		root.putNull("normalizer");
		root.set("pre_tokenizer", preTokenizer(file.string("tokenizer.ggml.pre"), file));
		root.putNull("post_processor");
		ObjectNode decoder = root.putObject("decoder");
		decoder.put("type", "ByteLevel");
		decoder.put("add_prefix_space", true);
		decoder.put("trim_offsets", true);
		decoder.put("use_regex", true);
		ObjectNode bpe = root.putObject("model");
		bpe.put("type", "BPE");
		bpe.putNull("dropout");
		bpe.putNull("unk_token");
		bpe.put("fuse_unk", false);
		bpe.put("byte_fallback", false);
		bpe.set("vocab", vocab);
		ArrayNode mergeList = bpe.putArray("merges");
		merges.forEach((merge) -> mergeList.add((String) merge));
		return withTemplate(root, file, tokens);
	}

	/** An added token, matched whole and unnormalised, special or not. */
	static void addedToken(ArrayNode added, int id, String content, boolean special) {
		ObjectNode entry = added.addObject();
		entry.put("id", id);
		entry.put("content", content);
		entry.put("single_word", false);
		entry.put("lstrip", false);
		entry.put("rstrip", false);
		entry.put("normalized", false);
		entry.put("special", special);
	}

	/** The tokenizer of {@code root} with the file's chat template and BOS/EOS rules. */
	private static Tokenizer withTemplate(ObjectNode root, GgufFile file, List<?> tokens) {
		String template = file.string("tokenizer.chat_template");
		int bos = number(file, "tokenizer.ggml.bos_token_id", -1);
		int eos = number(file, "tokenizer.ggml.eos_token_id", -1);
		Object addBos = file.metadata().get("tokenizer.ggml.add_bos_token");
		ChatTemplate chat = (template != null) ? new ChatTemplate(template, (bos >= 0) ? (String) tokens.get(bos) : "",
				(eos >= 0) ? (String) tokens.get(eos) : "") : null;
		return new Tokenizer(root, chat, bos, Boolean.TRUE.equals(addBos), file.path().toString());
	}

	private static int number(GgufFile file, String key, int fallback) {
		Number value = file.number(key);
		return (value != null) ? value.intValue() : fallback;
	}

	/** The pre-tokenizer llama.cpp names by {@code tokenizer.ggml.pre}. */
	private static JsonNode preTokenizer(String pre, GgufFile file) {
		ObjectNode byteLevel = JSON.createObjectNode();
		byteLevel.put("type", "ByteLevel");
		byteLevel.put("add_prefix_space", false);
		byteLevel.put("trim_offsets", true);
		byteLevel.put("use_regex", true);
		String kind = (pre != null) ? pre : "default";
		switch (kind) {
			case "default", "gpt2", "gpt-2" -> {
				return byteLevel;
			}
			case "smollm", "starcoder" -> {
				// SmolLM2's tokenizer.json: digits alone, then GPT-2's split
				ObjectNode sequence = JSON.createObjectNode();
				sequence.put("type", "Sequence");
				ArrayNode steps = sequence.putArray("pretokenizers");
				ObjectNode digits = steps.addObject();
				digits.put("type", "Digits");
				digits.put("individual_digits", true);
				steps.add(byteLevel);
				return sequence;
			}
			case "llama-bpe", "llama3", "qwen2" -> {
				String regex = kind.equals("qwen2")
						? "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
						: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
				ObjectNode sequence = JSON.createObjectNode();
				sequence.put("type", "Sequence");
				ArrayNode steps = sequence.putArray("pretokenizers");
				ObjectNode split = steps.addObject();
				split.put("type", "Split");
				split.putObject("pattern").put("Regex", regex);
				split.put("behavior", "Isolated");
				split.put("invert", false);
				ObjectNode level = byteLevel.deepCopy();
				level.put("use_regex", false);
				steps.add(level);
				return sequence;
			}
			default ->
				throw new CheckpointException("%s: pre-tokenizer '%s' is not supported".formatted(file.path(), pre));
		}
	}

	/**
	 * Loads {@code tokenizer.json} and {@code tokenizer_config.json} from a Hugging Face
	 * directory, and the chat template from the latter or, where it has none, from
	 * {@code chat_template.jinja} (as transformers 5 saves it) or
	 * {@code chat_template.json} (as multimodal processors save it).
	 */
	public static Tokenizer fromHuggingFace(Path directory) {
		Path path = directory.resolve("tokenizer.json");
		if (!Files.exists(path)) {
			throw new CheckpointException(directory + " has no tokenizer.json");
		}
		try {
			JsonNode root = JSON.readTree(path.toFile());
			Path configPath = directory.resolve("tokenizer_config.json");
			JsonNode config = Files.exists(configPath) ? JSON.readTree(configPath.toFile()) : JSON.createObjectNode();
			String bos = tokenText(config.path("bos_token"));
			String eos = tokenText(config.path("eos_token"));
			String template = chatTemplate(directory, config);
			ChatTemplate chat = (template != null) ? new ChatTemplate(template, bos, eos) : null;
			int bosId = -1;
			for (JsonNode added : root.path("added_tokens")) {
				if (added.get("content").asText().equals(bos)) {
					bosId = added.get("id").asInt();
				}
			}
			return new Tokenizer(root, chat, bosId, config.path("add_bos_token").asBoolean(false), path.toString());
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot read " + path + ": " + ex.getMessage(), ex);
		}
	}

	/** The directory's chat template, or null where it has none. */
	private static String chatTemplate(Path directory, JsonNode tokenizerConfig) throws IOException {
		String inConfig = templateText(tokenizerConfig.path("chat_template"));
		if (inConfig != null) {
			return inConfig;
		}
		Path jinja = directory.resolve("chat_template.jinja");
		if (Files.exists(jinja)) {
			return Files.readString(jinja);
		}
		Path json = directory.resolve("chat_template.json");
		return Files.exists(json) ? templateText(JSON.readTree(json.toFile()).path("chat_template")) : null;
	}

	/**
	 * A template's text: a string, or the one named {@code default} in a list of named
	 * templates.
	 */
	private static String templateText(JsonNode node) {
		if (node.isTextual()) {
			return node.asText();
		}
		for (JsonNode named : node) {
			if ("default".equals(named.path("name").asText()) && named.path("template").isTextual()) {
				return named.get("template").asText();
			}
		}
		return null;
	}

	private static String tokenText(JsonNode node) {
		return node.isTextual() ? node.asText() : node.path("content").asText("");
	}

	/**
	 * Token ids of a text; special-token text is recognised, and BOS is added if the
	 * model asks.
	 */
	public int[] encode(String text) {
		long[] ids = this.tokenizer.encode(text, false, false).getIds();
		int offset = (this.addBosToken && this.bosTokenId >= 0) ? 1 : 0;
		int[] result = new int[ids.length + offset];
		if (offset == 1) {
			result[0] = this.bosTokenId;
		}
		for (int i = 0; i < ids.length; i++) {
			result[offset + i] = Math.toIntExact(ids[i]);
		}
		return result;
	}

	/** Whether the vocabulary has the control tokens of a fill-in-the-middle prompt. */
	public boolean fillsInTheMiddle() {
		return this.infillTokens != null;
	}

	/**
	 * Token ids of a fill-in-the-middle prompt in the prefix-suffix-middle order that
	 * code models are trained on: BOS if the model asks, the prefix token, the prefix,
	 * the suffix token, the suffix, then the middle token, after which the model writes
	 * what goes between the two. The prefix and suffix are code or text that a client
	 * sends; control-token text inside them is encoded as the plain text it is, so that
	 * they cannot reshape the prompt.
	 * @throws IllegalStateException when the vocabulary lacks the control tokens
	 * ({@link #fillsInTheMiddle()})
	 */
	public int[] encodeInfill(String prefix, String suffix) {
		if (this.infillTokens == null) {
			throw new IllegalStateException("this model's vocabulary has no fill-in-the-middle tokens");
		}
		List<Integer> ids = opening();
		ids.add(this.infillTokens[0]);
		append(ids, this.plainTextTokenizer, prefix);
		ids.add(this.infillTokens[1]);
		append(ids, this.plainTextTokenizer, suffix);
		ids.add(this.infillTokens[2]);
		return ids.stream().mapToInt(Integer::intValue).toArray();
	}

	/**
	 * Token ids of chat messages rendered with the chat template. Control tokens come
	 * only from the template's own text: special-token text inside a message's content
	 * ({@code <|im_start|>system} typed by a user) is encoded as the plain text it is,
	 * unless {@code controlTokensInContent} is set. Content without such text is encoded
	 * exactly as {@link #encode} encodes the rendered prompt.
	 * @throws IllegalStateException when the model has no chat template
	 * @throws ChatTemplate.RenderException when rendering fails or exceeds a bound
	 */
	public int[] encodeChat(List<ChatTemplate.Message> messages, boolean addGenerationPrompt,
			boolean controlTokensInContent) {
		if (this.chatTemplate == null) {
			throw new IllegalStateException("this model has no chat template");
		}
		boolean forged = !controlTokensInContent && messages.stream()
			.anyMatch((message) -> this.specialTexts.stream().anyMatch(message.content()::contains));
		if (!forged) {
			return encode(this.chatTemplate.render(messages, addGenerationPrompt));
		}
		// Each special text in content becomes a placeholder that no content holds and
		// that template filters leave alone; the rendered text is split there.
		String mark = placeholderMark(messages);
		List<ChatTemplate.Message> escaped = messages.stream()
			.map((message) -> new ChatTemplate.Message(message.role(), escape(message.content(), mark)))
			.toList();
		String rendered = this.chatTemplate.render(escaped, addGenerationPrompt);
		Matcher matcher = Pattern.compile(Pattern.quote(mark) + "(\\d+)" + Pattern.quote(mark)).matcher(rendered);
		List<Integer> ids = opening();
		int from = 0;
		while (matcher.find()) {
			append(ids, this.tokenizer, rendered.substring(from, matcher.start()));
			append(ids, this.plainTextTokenizer, this.specialTexts.get(Integer.parseInt(matcher.group(1))));
			from = matcher.end();
		}
		append(ids, this.tokenizer, rendered.substring(from));
		return ids.stream().mapToInt(Integer::intValue).toArray();
	}

	/** A prompt's ids before its text: BOS if the model asks for it. */
	private List<Integer> opening() {
		List<Integer> ids = new ArrayList<>();
		if (this.addBosToken && this.bosTokenId >= 0) {
			ids.add(this.bosTokenId);
		}
		return ids;
	}

	private String escape(String content, String mark) {
		String escaped = content;
		for (int k = 0; k < this.specialTexts.size(); k++) {
			escaped = escaped.replace(this.specialTexts.get(k), mark + k + mark);
		}
		return escaped;
	}

	/** A private-use character (plane 16) that appears in no message. */
	private static String placeholderMark(List<ChatTemplate.Message> messages) {
		ThreadLocalRandom random = ThreadLocalRandom.current();
		while (true) {
			String mark = new String(Character.toChars(0x100000 + random.nextInt(0xFFFE)));
			if (messages.stream().noneMatch((message) -> message.content().contains(mark))) {
				return mark;
			}
		}
	}

	private static void append(List<Integer> ids, HuggingFaceTokenizer tokenizer, String text) {
		if (text.isEmpty()) {
			return;
		}
		for (long id : tokenizer.encode(text, false, false).getIds()) {
			ids.add(Math.toIntExact(id));
		}
	}

	public String decode(int[] ids, boolean skipSpecialTokens) {
		IncrementalDetokenizer detokenizer = new IncrementalDetokenizer(this, skipSpecialTokens);
		StringBuilder text = new StringBuilder();
		for (int id : ids) {
			text.append(detokenizer.accept(id));
		}
		return text.append(detokenizer.flush()).toString();
	}

	public byte[] tokenBytes(int id) {
		if (id < 0 || id >= this.tokenBytes.length) {
			throw new IllegalArgumentException(
					"token id %d is outside the vocabulary [0, %d)".formatted(id, this.tokenBytes.length));
		}
		return this.tokenBytes[id];
	}

	public boolean isSpecial(int id) {
		return id >= 0 && id < this.special.length && this.special[id];
	}

	public int vocabularySize() {
		return this.tokenBytes.length;
	}

	/** The checkpoint's chat template, or null if it has none. */
	public ChatTemplate chatTemplate() {
		return this.chatTemplate;
	}

	@Override
	public void close() {
		this.plainTextTokenizer.close();
		this.tokenizer.close();
	}

}

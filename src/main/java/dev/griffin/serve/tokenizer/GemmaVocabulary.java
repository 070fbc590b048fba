package dev.griffin.serve.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Gemma's SentencePiece vocabulary as a GGUF file stores it ({@code tokenizer.ggml.model}
 * "llama": pieces, scores and token types, no merges), turned into the byte-fallback BPE
 * tokenizer transformers builds from the same file, so both cut text into the same ids:
 * <ul>
 * <li>a piece made only of whitespace that contains a space is stored with real spaces
 * and looked up spelled with U+2581, one per character;</li>
 * <li>the merges are every split of a piece into two pieces of the vocabulary, ranked by
 * where the merged piece stands in the file (earlier first; Gemma's scores do not follow
 * its merge order), then by the longer left part and the longer right part, then by the
 * parts' own positions;</li>
 * <li>text has its spaces replaced by U+2581 and is split after each space; unknown bytes
 * fall back to the {@code <0xNN>} pieces;</li>
 * <li>control pieces are special tokens, user-defined ones (runs of newlines and tabs,
 * markup) plain added tokens, both matched whole.</li>
 * </ul>
 */
final class GemmaVocabulary {

	/** llama.cpp's token types. */
	private static final int CONTROL = 3;

	private static final int USER_DEFINED = 4;

	private static final ObjectMapper JSON = new ObjectMapper();

	private GemmaVocabulary() {
	}

	/** The tokenizer.json of a Gemma GGUF vocabulary. */
	static ObjectNode tokenizerJson(List<String> pieces, List<Integer> types, String unknown) {
		List<String> spelled = new ArrayList<>(pieces.size());
		for (String piece : pieces) {
			spelled.add(respelled(piece));
		}
		// a later duplicate wins, as in a Python dict built in order
		Map<String, Integer> vocab = new LinkedHashMap<>();
		for (int id = 0; id < spelled.size(); id++) {
			vocab.put(spelled.get(id), id);
		}
		ObjectNode root = JSON.createObjectNode();
		root.put("version", "1.0");
		root.putNull("truncation");
		root.putNull("padding");
		ArrayNode added = root.putArray("added_tokens");
		for (int id = 0; id < pieces.size(); id++) {
			int type = types.get(id);
			boolean control = type == CONTROL;
			// a user-defined piece is added under its stored spelling, where the
			// vocabulary has it
			if (control || (type == USER_DEFINED && vocab.containsKey(pieces.get(id)))) {
				Tokenizer.addedToken(added, vocab.getOrDefault(pieces.get(id), id), pieces.get(id), control);
			}
		}
		ObjectNode normalizer = root.putObject("normalizer");
		normalizer.put("type", "Replace");
		normalizer.putObject("pattern").put("String", " ");
		normalizer.put("content", "\u2581");
		ObjectNode split = root.putObject("pre_tokenizer");
		split.put("type", "Split");
		split.putObject("pattern").put("String", " ");
		split.put("behavior", "MergedWithPrevious");
		split.put("invert", false);
		root.putNull("post_processor");
		ObjectNode decoder = root.putObject("decoder");
		decoder.put("type", "Sequence");
		ArrayNode decoders = decoder.putArray("decoders");
		ObjectNode replace = decoders.addObject();
		replace.put("type", "Replace");
		replace.putObject("pattern").put("String", "\u2581");
		replace.put("content", " ");
		decoders.addObject().put("type", "ByteFallback");
		decoders.addObject().put("type", "Fuse");
		ObjectNode model = root.putObject("model");
		model.put("type", "BPE");
		model.putNull("dropout");
		model.put("unk_token", unknown);
		model.putNull("continuing_subword_prefix");
		model.putNull("end_of_word_suffix");
		model.put("fuse_unk", true);
		model.put("byte_fallback", true);
		model.put("ignore_merges", false);
		ObjectNode vocabulary = model.putObject("vocab");
		vocab.forEach(vocabulary::put);
		ArrayNode mergeList = model.putArray("merges");
		for (String[] merge : merges(spelled, vocab)) {
			mergeList.addArray().add(merge[0]).add(merge[1]);
		}
		return root;
	}

	/** A whitespace-only piece with a space, spelled with U+2581 per character. */
	static String respelled(String piece) {
		if (piece.indexOf(' ') < 0 || !piece.codePoints().allMatch(GemmaVocabulary::isSpace)) {
			return piece;
		}
		return "\u2581".repeat(piece.codePointCount(0, piece.length()));
	}

	/** Python's str.isspace for one character. */
	private static boolean isSpace(int c) {
		return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
	}

	private record Merge(String left, String right, int rank, int leftLength, int rightLength) {

	}

	/**
	 * Every split of a piece into two vocabulary pieces: for each piece in its first
	 * position, its splits by the parts' ids; then all of them by the merged piece's
	 * position (earlier first; a piece's position is its last), the left part's length
	 * and the right part's (longer first), keeping that order among equals.
	 */
	static List<String[]> merges(List<String> spelled, Map<String, Integer> vocab) {
		Map<String, Integer> rank = new LinkedHashMap<>();
		for (int id = 0; id < spelled.size(); id++) {
			rank.put(spelled.get(id), id);
		}
		List<Merge> merges = new ArrayList<>();
		List<Merge> local = new ArrayList<>();
		for (Map.Entry<String, Integer> entry : rank.entrySet()) {
			String piece = entry.getKey();
			int length = piece.codePointCount(0, piece.length());
			local.clear();
			for (int cut = 1; cut < length; cut++) {
				int at = piece.offsetByCodePoints(0, cut);
				String left = piece.substring(0, at);
				String right = piece.substring(at);
				if (vocab.containsKey(left) && vocab.containsKey(right)) {
					local.add(new Merge(left, right, entry.getValue(), cut, length - cut));
				}
			}
			local.sort(Comparator.comparingInt((Merge m) -> vocab.get(m.left()))
				.thenComparingInt((m) -> vocab.get(m.right())));
			merges.addAll(local);
		}
		merges.sort(Comparator.comparingInt(Merge::rank)
			.thenComparing(Comparator.comparingInt(Merge::leftLength).reversed())
			.thenComparing(Comparator.comparingInt(Merge::rightLength).reversed()));
		List<String[]> result = new ArrayList<>(merges.size());
		for (Merge merge : merges) {
			result.add(new String[] { merge.left(), merge.right() });
		}
		return result;
	}

}

package dev.griffin.serve.web;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import dev.griffin.serve.generation.GeneratedToken;
import dev.griffin.serve.tokenizer.Tokenizer;
import dev.griffin.serve.web.ApiTypes.ChatLogprobs;
import dev.griffin.serve.web.ApiTypes.CompletionLogprobs;
import dev.griffin.serve.web.ApiTypes.TokenLogprob;
import dev.griffin.serve.web.ApiTypes.TopLogprob;

/**
 * Log-probabilities in the two shapes OpenAI's completion endpoints use: one entry per
 * token of the output (released text, which no token stands for, has none), and in
 * completions per token of an echoed prompt, whose first token has null for its value and
 * its alternatives.
 */
final class Logprobs {

	private Logprobs() {
	}

	/**
	 * The legacy completions shape: parallel lists of tokens, values, top maps and each
	 * token's offset in the choice's text, the first at {@code start} (a streamed chunk's
	 * place in its choice's text).
	 */
	static CompletionLogprobs completion(List<GeneratedToken> tokens, Tokenizer tokenizer, int start) {
		List<String> texts = new ArrayList<>();
		List<Float> values = new ArrayList<>();
		List<Map<String, Float>> tops = new ArrayList<>();
		List<Integer> offsets = new ArrayList<>();
		int offset = start;
		for (GeneratedToken token : tokens) {
			if (!token.isToken()) {
				// released text: no token of its own, and nothing follows it
				continue;
			}
			texts.add(text(tokenizer, token.id()));
			if (Float.isNaN(token.logprob())) {
				// an echoed prompt's first token: nothing predicts it
				values.add(null);
				tops.add(null);
			}
			else {
				values.add(token.logprob());
				Map<String, Float> top = new LinkedHashMap<>();
				token.topLogprobs()
					.forEach((alternative) -> top.putIfAbsent(alternative.token(), alternative.logprob()));
				tops.add(top);
			}
			offsets.add(offset);
			offset += token.text().length();
		}
		return new CompletionLogprobs(texts, values, tops, offsets);
	}

	/** The chat shape: one entry per token, with its bytes and alternatives. */
	static ChatLogprobs chat(List<GeneratedToken> tokens, Tokenizer tokenizer) {
		List<TokenLogprob> content = new ArrayList<>();
		for (GeneratedToken token : tokens) {
			if (!token.isToken()) {
				continue;
			}
			List<TopLogprob> top = token.topLogprobs()
				.stream()
				.map((alternative) -> new TopLogprob(alternative.token(), alternative.logprob(),
						bytes(tokenizer.tokenBytes(alternative.id()))))
				.toList();
			content.add(new TokenLogprob(text(tokenizer, token.id()), token.logprob(),
					bytes(tokenizer.tokenBytes(token.id())), top));
		}
		return new ChatLogprobs(content);
	}

	private static String text(Tokenizer tokenizer, int id) {
		return new String(tokenizer.tokenBytes(id), StandardCharsets.UTF_8);
	}

	private static List<Integer> bytes(byte[] bytes) {
		List<Integer> out = new ArrayList<>(bytes.length);
		for (byte b : bytes) {
			out.add(b & 0xFF);
		}
		return out;
	}

}

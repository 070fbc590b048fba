package dev.griffin.serve.generation;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.tokenizer.Tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The text a sequence streams and returns, token by token: a byte-level tokenizer (one
 * token per byte) and logits that pick the bytes of a chosen reply, then the end token.
 */
class DecodingTests {

	/** The end token of these tests: byte 0, which no reply here contains. */
	private static final int END = 0;

	@TempDir
	static Path tokenizerDirectory;

	private static NDManager manager;

	private static ModelConfig config;

	private static Tokenizer tokenizer;

	@BeforeAll
	static void load() {
		manager = NDManager.newBaseManager();
		config = Fixtures.tinyModel("tiny-llama", ModelOptions.CPU_FLOAT32, manager).config();
		tokenizer = Fixtures.byteTokenizer(tokenizerDirectory);
	}

	@AfterAll
	static void close() {
		manager.close();
	}

	/** What one sequence streamed and returned. */
	private record Run(List<GeneratedToken> streamed, Generator.Result result) {

		String streamedText() {
			StringBuilder text = new StringBuilder();
			this.streamed.forEach((token) -> text.append(token.text()));
			return text.toString();
		}

	}

	/** Decodes the given bytes, then the end token (if the sequence is still running). */
	private static Run decode(byte[] reply, List<String> stops, int maxNewTokens) {
		SamplingParams params = new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0L, maxNewTokens, stops, List.of(END), true);
		Decoding decoding = new Decoding(params, -1, config, tokenizer, new int[] { 'Q' });
		List<GeneratedToken> streamed = new ArrayList<>();
		for (int i = 0; i <= reply.length && !decoding.finished(); i++) {
			float[] logits = new float[config.vocabularySize()];
			logits[(i < reply.length) ? reply[i] & 0xFF : END] = 10;
			GeneratedToken token = decoding.next(logits);
			if (token != null) {
				streamed.add(token);
			}
		}
		return new Run(streamed, decoding.result(1, false, new Generator.Timings(0, 0, 0, 0, 0)));
	}

	private static Run decode(String reply, List<String> stops) {
		return decode(reply.getBytes(StandardCharsets.UTF_8), stops, 64);
	}

	@Test
	void anEndTokenReleasesWhatWasHeldBackForAStopString() {
		// "###" holds back the last two characters until it is known not to follow
		Run run = decode("Paris.", List.of("###"));
		assertThat(run.result().text()).isEqualTo("Paris.");
		assertThat(run.result().finishReason()).isEqualTo(FinishReason.STOP);
		assertThat(run.streamedText()).isEqualTo("Paris.");
		// six tokens, then the held-back text, which no token stands for
		assertThat(run.result().tokens()).hasSize(6);
		assertThat(run.streamed()).hasSize(7);
		GeneratedToken last = run.streamed().get(6);
		assertThat(last.isToken()).isFalse();
		assertThat(last.text()).isEqualTo("s.");
		assertThat(run.streamed().subList(0, 6)).allMatch(GeneratedToken::isToken);
	}

	@Test
	void theStartOfAStopStringThatNeverCameIsText() {
		Run run = decode("Paris ##", List.of("###"));
		assertThat(run.result().text()).isEqualTo("Paris ##");
		assertThat(run.streamedText()).isEqualTo("Paris ##");
	}

	@Test
	void aStopStringEndsTheTextBeforeIt() {
		Run run = decode("Paris### and more", List.of("###"));
		assertThat(run.result().text()).isEqualTo("Paris");
		assertThat(run.streamedText()).isEqualTo("Paris");
		assertThat(run.result().finishReason()).isEqualTo(FinishReason.STOP);
		assertThat(run.streamed()).allMatch(GeneratedToken::isToken);
	}

	@Test
	void withoutStopStringsAnEndTokenAddsNothing() {
		Run run = decode("Paris.", List.of());
		assertThat(run.result().text()).isEqualTo("Paris.");
		assertThat(run.streamed()).hasSize(6).allMatch(GeneratedToken::isToken);
	}

	@Test
	void anUnfinishedCharacterAtTheEndIsReleasedAsAReplacement() {
		byte[] cafe = "café".getBytes(StandardCharsets.UTF_8);
		// the first byte of "é" alone, then the end token
		byte[] cut = Arrays.copyOf(cafe, cafe.length - 1);
		Run run = decode(cut, List.of(), 64);
		assertThat(run.result().text()).isEqualTo("caf\uFFFD");
		assertThat(run.streamedText()).isEqualTo("caf\uFFFD");
	}

	@Test
	void theTokenBudgetReleasesEverything() {
		Run run = decode("Paris.".getBytes(StandardCharsets.UTF_8), List.of("###"), 4);
		assertThat(run.result().text()).isEqualTo("Pari");
		assertThat(run.result().finishReason()).isEqualTo(FinishReason.LENGTH);
		assertThat(run.streamedText()).isEqualTo("Pari");
	}

	@Test
	void minTokensHoldsOffTheEndToken() {
		SamplingParams params = new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0L, 16, List.of(), List.of(END), true,
				java.util.Map.of(), 3);
		Decoding decoding = new Decoding(params, -1, config, tokenizer, new int[] { 'Q' });
		StringBuilder streamed = new StringBuilder();
		// each step prefers the end token, then 'a'
		while (!decoding.finished()) {
			float[] logits = new float[config.vocabularySize()];
			logits[END] = 10;
			logits['a'] = 5;
			logits['b'] = 4;
			GeneratedToken token = decoding.next(logits);
			if (token != null) {
				streamed.append(token.text());
			}
		}
		Generator.Result result = decoding.result(1, false, new Generator.Timings(0, 0, 0, 0, 0));
		// three tokens, each 'a' (the end token banned), then the end token as soon as it
		// may come
		assertThat(result.tokens()).containsExactly('a', 'a', 'a');
		assertThat(result.text()).isEqualTo("aaa").isEqualTo(streamed.toString());
		assertThat(result.finishReason()).isEqualTo(FinishReason.STOP);
	}

	@Test
	void stopStringsEndTheTextOnlyFromMinTokensOn() {
		SamplingParams params = new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0L, 16, List.of("a"), List.of(END), true,
				java.util.Map.of(), 2);
		Decoding decoding = new Decoding(params, -1, config, tokenizer, new int[] { 'Q' });
		for (char next : "aba".toCharArray()) {
			float[] logits = new float[config.vocabularySize()];
			logits[next] = 10;
			decoding.next(logits);
		}
		// the first 'a' is the first token, under min_tokens; the second ends the text
		assertThat(decoding.finished()).isTrue();
		assertThat(decoding.result(1, false, new Generator.Timings(0, 0, 0, 0, 0)).text()).isEqualTo("ab");
	}

}

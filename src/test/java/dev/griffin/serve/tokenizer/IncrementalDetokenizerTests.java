package dev.griffin.serve.tokenizer;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class IncrementalDetokenizerTests {

	@Test
	void completePrefixNeverEndsInsideACharacter() {
		byte[] euro = "€".getBytes(StandardCharsets.UTF_8); // 3 bytes
		byte[] emoji = "🤗".getBytes(StandardCharsets.UTF_8); // 4 bytes
		assertThat(IncrementalDetokenizer.completePrefix(new byte[] { 'a', euro[0] })).isEqualTo(1);
		assertThat(IncrementalDetokenizer.completePrefix(new byte[] { 'a', euro[0], euro[1] })).isEqualTo(1);
		assertThat(IncrementalDetokenizer.completePrefix(euro)).isEqualTo(3);
		assertThat(IncrementalDetokenizer.completePrefix(new byte[] { emoji[0], emoji[1], emoji[2] })).isEqualTo(0);
		assertThat(IncrementalDetokenizer.completePrefix(emoji)).isEqualTo(4);
		// a stray continuation byte can never complete: it is released, not held forever
		assertThat(IncrementalDetokenizer.completePrefix(new byte[] { 'a', (byte) 0x80 })).isEqualTo(2);
	}

}

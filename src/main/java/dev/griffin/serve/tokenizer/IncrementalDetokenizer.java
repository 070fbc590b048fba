package dev.griffin.serve.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Turns a stream of token ids into text pieces without ever emitting half a UTF-8
 * character: bytes of a character split across tokens wait until the character is
 * complete. Bytes that can never form a character are emitted as U+FFFD, so a bad byte
 * cannot stall the stream.
 */
public final class IncrementalDetokenizer {

	private final Tokenizer tokenizer;

	private final boolean skipSpecialTokens;

	private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

	public IncrementalDetokenizer(Tokenizer tokenizer, boolean skipSpecialTokens) {
		this.tokenizer = tokenizer;
		this.skipSpecialTokens = skipSpecialTokens;
	}

	/** Adds a token and returns the text it completes (possibly empty). */
	public String accept(int token) {
		if (this.skipSpecialTokens && this.tokenizer.isSpecial(token)) {
			return "";
		}
		this.pending.writeBytes(this.tokenizer.tokenBytes(token));
		return drain(false);
	}

	/**
	 * Returns whatever is left at the end of the stream, incomplete characters as U+FFFD.
	 */
	public String flush() {
		return drain(true);
	}

	private String drain(boolean end) {
		byte[] bytes = this.pending.toByteArray();
		int complete = completePrefix(bytes);
		if (end) {
			complete = bytes.length;
		}
		this.pending.reset();
		this.pending.write(bytes, complete, bytes.length - complete);
		return new String(bytes, 0, complete, StandardCharsets.UTF_8);
	}

	/**
	 * Length of the longest prefix that does not end inside a character that may still
	 * complete.
	 */
	static int completePrefix(byte[] bytes) {
		int n = bytes.length;
		// look back at most 3 bytes for the start of a multi-byte character
		for (int back = 1; back <= Math.min(3, n); back++) {
			int b = bytes[n - back] & 0xFF;
			if ((b & 0xC0) == 0x80) {
				continue; // continuation byte: keep looking for the lead
			}
			int needed = (b >= 0xF0 && b <= 0xF4) ? 4 : (b >= 0xE0) ? 3 : (b >= 0xC2 && b < 0xE0) ? 2 : 1;
			return (needed > back) ? n - back : n;
		}
		return n;
	}

}

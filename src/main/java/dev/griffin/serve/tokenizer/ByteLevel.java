package dev.griffin.serve.tokenizer;

/**
 * GPT-2's reversible byte-to-character map, used by byte-level BPE vocabularies: every
 * byte is a printable character, so a token string decodes back to exact bytes.
 */
final class ByteLevel {

	private static final int[] CHAR_TO_BYTE = new int[512];

	static {
		java.util.Arrays.fill(CHAR_TO_BYTE, -1);
		int next = 0;
		for (int b = 0; b < 256; b++) {
			boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
			int c = printable ? b : 256 + next++;
			CHAR_TO_BYTE[c] = b;
		}
	}

	private ByteLevel() {
	}

	/**
	 * The bytes a byte-level token string stands for, or null if it is not byte-level
	 * text.
	 */
	static byte[] decode(String token) {
		byte[] bytes = new byte[token.length()];
		for (int i = 0; i < token.length(); i++) {
			char c = token.charAt(i);
			int b = (c < CHAR_TO_BYTE.length) ? CHAR_TO_BYTE[c] : -1;
			if (b < 0) {
				return null;
			}
			bytes[i] = (byte) b;
		}
		return bytes;
	}

}

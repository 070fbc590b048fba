package dev.griffin.serve.weights;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Which tokens end generation for a GGUF file: its end-of-sequence and end-of-turn ids,
 * and the control tokens that end a turn or a text in the chat formats such files carry.
 */
class GgufEndTokensTests {

	private static final int NORMAL = 1;

	private static final int CONTROL = 3;

	private static final int USER_DEFINED = 4;

	@TempDir
	Path dir;

	@Test
	void qwenEndsOnBothItsTurnEndAndItsTextEnd() throws IOException {
		// Qwen2.5's files name <|im_end|> only; its models also end on <|endoftext|>
		try (GgufFile file = write(List.of("a", "<|endoftext|>", "<|im_start|>", "<|im_end|>"),
				List.of(NORMAL, CONTROL, CONTROL, CONTROL), 3L, null)) {
			assertThat(GgufCheckpoint.endTokens(file)).containsExactly(3, 1);
		}
	}

	@Test
	void gemmaEndsOnItsEndOfTurn() throws IOException {
		try (GgufFile file = write(List.of("<pad>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
				List.of(CONTROL, CONTROL, CONTROL, CONTROL), 1L, null)) {
			assertThat(GgufCheckpoint.endTokens(file)).containsExactly(1, 3);
		}
	}

	@Test
	void theFilesEndOfTurnIdCountsWhateverItsText() throws IOException {
		try (GgufFile file = write(List.of("a", "</s>", "[/END]"), List.of(NORMAL, CONTROL, CONTROL), 1L, 2L)) {
			assertThat(GgufCheckpoint.endTokens(file)).containsExactly(1, 2);
		}
	}

	@Test
	void onlyControlTokensEndByTheirText() throws IOException {
		// the same texts as ordinary or user-defined tokens are text a reply may contain
		try (GgufFile file = write(List.of("<|endoftext|>", "<end_of_turn>", "<|im_end|>", "x"),
				List.of(NORMAL, USER_DEFINED, USER_DEFINED, NORMAL), 3L, null)) {
			assertThat(GgufCheckpoint.endTokens(file)).containsExactly(3);
		}
	}

	@Test
	void otherControlTokensDoNotEnd() throws IOException {
		try (GgufFile file = write(List.of("<|im_start|>", "<|fim_middle|>", "<|im_end|>"),
				List.of(CONTROL, CONTROL, CONTROL), 2L, null)) {
			assertThat(GgufCheckpoint.endTokens(file)).containsExactly(2);
		}
	}

	@Test
	void aFileWithoutTokenTypesEndsOnItsIdsOnly() throws IOException {
		try (GgufFile file = write(List.of("a", "<|endoftext|>"), null, 1L, null)) {
			assertThat(GgufCheckpoint.endTokens(file)).containsExactly(1);
		}
		try (GgufFile file = write(null, null, null, null)) {
			assertThat(GgufCheckpoint.endTokens(file)).isEmpty();
		}
	}

	/** A GGUF v3 file with no tensors and the given tokenizer metadata (null: absent). */
	private GgufFile write(List<String> tokens, List<Integer> types, Long eos, Long eot) throws IOException {
		Metadata metadata = new Metadata();
		metadata.string("general.architecture", "qwen2");
		if (tokens != null) {
			metadata.strings("tokenizer.ggml.tokens", tokens);
		}
		if (types != null) {
			metadata.ints("tokenizer.ggml.token_type", types);
		}
		if (eos != null) {
			metadata.uint32("tokenizer.ggml.eos_token_id", eos);
		}
		if (eot != null) {
			metadata.uint32("tokenizer.ggml.eot_token_id", eot);
		}
		Path path = this.dir.resolve("tokens" + System.nanoTime() + ".gguf");
		Files.write(path, metadata.file());
		return GgufFile.open(path);
	}

	/** GGUF metadata entries, little-endian. */
	private static final class Metadata {

		private final ByteArrayOutputStream entries = new ByteArrayOutputStream();

		private int count;

		void string(String key, String value) {
			key(key, 8);
			text(value);
		}

		void strings(String key, List<String> values) {
			key(key, 9);
			put(ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(8).putLong(values.size()));
			values.forEach(this::text);
		}

		void ints(String key, List<Integer> values) {
			key(key, 9);
			ByteBuffer buffer = ByteBuffer.allocate(12 + 4 * values.size()).order(ByteOrder.LITTLE_ENDIAN);
			buffer.putInt(5).putLong(values.size());
			values.forEach(buffer::putInt);
			put(buffer);
		}

		void uint32(String key, long value) {
			key(key, 4);
			put(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) value));
		}

		byte[] file() {
			ByteBuffer header = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
			header.putInt(0x46554747).putInt(3).putLong(0).putLong(this.count);
			ByteArrayOutputStream out = new ByteArrayOutputStream();
			out.writeBytes(header.array());
			out.writeBytes(this.entries.toByteArray());
			// the (empty) tensor data starts at the next 32-byte boundary
			out.writeBytes(new byte[(32 - out.size() % 32) % 32]);
			return out.toByteArray();
		}

		private void key(String key, int type) {
			this.count++;
			text(key);
			put(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(type));
		}

		private void text(String value) {
			byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
			put(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(bytes.length));
			this.entries.writeBytes(bytes);
		}

		private void put(ByteBuffer buffer) {
			this.entries.writeBytes(buffer.array());
		}

	}

}

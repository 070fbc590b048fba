package dev.griffin.serve.analysis;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/** The evaluations' input files: one JSON object per line, blank lines skipped. */
final class JsonLines {

	private static final ObjectMapper JSON = new ObjectMapper();

	/** Turns one line into an item. */
	interface Parser<T> {

		/**
		 * @param index the item's index (lines before it that held items)
		 * @return the item, or null when the line lacks what the file needs
		 */
		T parse(JsonNode row, int index);

	}

	private JsonLines() {
	}

	/**
	 * The first {@code limit} items of {@code file} (0: all).
	 * @param needs what every line needs, for the error message
	 * @throws IllegalArgumentException naming the file and line of a line the parser
	 * finds lacking
	 */
	static <T> List<T> read(Path file, int limit, String needs, Parser<T> parser) throws IOException {
		List<T> items = new ArrayList<>();
		for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
			if (line.isBlank()) {
				continue;
			}
			T item = parser.parse(JSON.readTree(line), items.size());
			if (item == null) {
				throw new IllegalArgumentException(
						file + " line " + (items.size() + 1) + ": every line needs " + needs);
			}
			items.add(item);
			if (limit > 0 && items.size() == limit) {
				break;
			}
		}
		return items;
	}

}

package dev.griffin.serve.weights;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * One {@code .safetensors} file: a JSON header of tensor descriptions followed by raw
 * data.
 */
public final class SafetensorsFile implements AutoCloseable {

	private static final ObjectMapper JSON = new ObjectMapper();

	private final Path path;

	private final FileChannel channel;

	private final long dataStart;

	private final Map<String, Entry> entries;

	private final ReadScratch scratch = new ReadScratch();

	/** A tensor as the header describes it; offsets are relative to the data section. */
	public record Entry(String name, String dtype, long[] shape, long begin, long end) {

	}

	private SafetensorsFile(Path path, FileChannel channel, long dataStart, Map<String, Entry> entries) {
		this.path = path;
		this.channel = channel;
		this.dataStart = dataStart;
		this.entries = entries;
	}

	public static SafetensorsFile open(Path path) {
		try {
			FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
			try {
				long size = channel.size();
				if (size < 8) {
					throw new CheckpointException(path + " is truncated: " + size + " bytes, no safetensors header");
				}
				ByteBuffer lengthBuffer = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
				FileReads.readFully(channel, lengthBuffer, 0); // the size check above
																// guarantees 8 bytes
				long headerLength = lengthBuffer.flip().getLong();
				if (headerLength <= 0 || headerLength > 100_000_000 || 8 + headerLength > size) {
					throw new CheckpointException(
							"%s is truncated or not a safetensors file (header length %d, file size %d)".formatted(path,
									headerLength, size));
				}
				ByteBuffer header = ByteBuffer.allocate((int) headerLength);
				if (!FileReads.readFully(channel, header, 8)) {
					throw new CheckpointException(path + " is truncated inside its header");
				}
				JsonNode root = JSON.readTree(header.array());
				Map<String, Entry> entries = new LinkedHashMap<>();
				long dataSize = size - 8 - headerLength;
				for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext();) {
					Map.Entry<String, JsonNode> field = it.next();
					if (field.getKey().equals("__metadata__")) {
						continue;
					}
					JsonNode node = field.getValue();
					long[] shape = new long[node.get("shape").size()];
					for (int i = 0; i < shape.length; i++) {
						shape[i] = node.get("shape").get(i).asLong();
					}
					long begin = node.get("data_offsets").get(0).asLong();
					long end = node.get("data_offsets").get(1).asLong();
					if (end > dataSize) {
						throw new CheckpointException(
								"%s is truncated: tensor '%s' ends at data byte %d but the data section has %d bytes"
									.formatted(path, field.getKey(), end, dataSize));
					}
					entries.put(field.getKey(),
							new Entry(field.getKey(), node.get("dtype").asText(), shape, begin, end));
				}
				return new SafetensorsFile(path, channel, 8 + headerLength, entries);
			}
			catch (RuntimeException | IOException ex) {
				channel.close();
				throw ex;
			}
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot read safetensors file " + path + ": " + ex.getMessage(), ex);
		}
	}

	public Path path() {
		return this.path;
	}

	public Map<String, Entry> entries() {
		return this.entries;
	}

	/** The shape of a tensor. */
	public long[] shape(String name) {
		return entry(name).shape().clone();
	}

	private Entry entry(String name) {
		Entry entry = this.entries.get(name);
		if (entry == null) {
			throw new CheckpointException("%s has no tensor '%s'".formatted(this.path, name));
		}
		return entry;
	}

	/**
	 * Reads rows [from, from + count) of a tensor (its outermost dimension) as float32
	 * into {@code out[0, count * columns)}; F32, F16 and BF16 are supported. Positional
	 * reads into a reused buffer rather than a mapping, so the file's pages are not
	 * counted in the process's resident memory while a model loads.
	 */
	public synchronized void readRows(String name, long from, int count, float[] out) {
		Entry entry = entry(name);
		long elements = Arrays.stream(entry.shape()).reduce(1, Math::multiplyExact);
		int width = switch (entry.dtype()) {
			case "F32" -> 4;
			case "F16", "BF16" -> 2;
			default -> throw new CheckpointException(
					"%s: tensor '%s' has dtype %s, which is not supported (supported: F32, F16, BF16)"
						.formatted(this.path, name, entry.dtype()));
		};
		if (entry.end() - entry.begin() != elements * width) {
			throw new CheckpointException("%s: tensor '%s' (%s %s) has %d bytes, expected %d".formatted(this.path, name,
					entry.dtype(), Arrays.toString(entry.shape()), entry.end() - entry.begin(), elements * width));
		}
		long rows = (entry.shape().length == 0) ? 1 : entry.shape()[0];
		long columns = elements / Math.max(1, rows);
		if (from < 0 || count < 0 || from + count > rows) {
			throw new IllegalArgumentException("rows [%d, %d) of tensor '%s' %s".formatted(from, from + count, name,
					Arrays.toString(entry.shape())));
		}
		int values = Math.toIntExact(count * columns);
		ByteBuffer bytes = this.scratch.take(Math.multiplyExact(values, width));
		long start = this.dataStart + entry.begin() + from * columns * width;
		try {
			if (!FileReads.readFully(this.channel, bytes, start)) {
				throw new CheckpointException("%s: tensor '%s' is truncated".formatted(this.path, name));
			}
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot read tensor '%s' from %s: %s".formatted(name, this.path, ex), ex);
		}
		GgmlType type = switch (entry.dtype()) {
			case "F32" -> GgmlType.F32;
			case "F16" -> GgmlType.F16;
			default -> GgmlType.BF16;
		};
		type.dequantize(bytes.flip(), out, 0, values);
	}

	@Override
	public synchronized void close() throws IOException {
		this.scratch.release();
		this.channel.close();
	}

}

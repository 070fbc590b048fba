package dev.griffin.serve.weights;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A GGUF file (versions 2 and 3): metadata, tensor infos and memory-mapped tensor data.
 * Reading the header is eager and validated; tensor data is mapped on demand, so opening
 * a multi-gigabyte file is cheap.
 */
public final class GgufFile implements AutoCloseable {

	private static final int MAGIC = 0x46554747; // "GGUF" little-endian

	private static final int DEFAULT_ALIGNMENT = 32;

	private final Path path;

	private final FileChannel channel;

	private final int version;

	private final Map<String, Object> metadata;

	private final Map<String, TensorInfo> tensors;

	private final long dataOffset;

	private final ReadScratch scratch = new ReadScratch();

	/**
	 * A tensor as the file describes it. {@code shape} is row-major (outermost first),
	 * the reverse of GGUF's {@code ne} order.
	 */
	public record TensorInfo(String name, long[] shape, GgmlType type, long offset, long byteSize) {

		public long elements() {
			return Arrays.stream(this.shape).reduce(1, Math::multiplyExact);
		}

	}

	private GgufFile(Path path, FileChannel channel, int version, Map<String, Object> metadata,
			Map<String, TensorInfo> tensors, long dataOffset) {
		this.path = path;
		this.channel = channel;
		this.version = version;
		this.metadata = metadata;
		this.tensors = tensors;
		this.dataOffset = dataOffset;
	}

	public static GgufFile open(Path path) {
		FileChannel channel;
		try {
			channel = FileChannel.open(path, StandardOpenOption.READ);
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot open GGUF file " + path + ": " + ex.getMessage(), ex);
		}
		try {
			return read(path, channel);
		}
		catch (RuntimeException | IOException ex) {
			try {
				channel.close();
			}
			catch (IOException suppressed) {
				ex.addSuppressed(suppressed);
			}
			if (ex instanceof CheckpointException checkpointException) {
				throw checkpointException;
			}
			throw new CheckpointException("cannot read GGUF file " + path + ": " + ex, ex);
		}
	}

	private static GgufFile read(Path path, FileChannel channel) throws IOException {
		long fileSize = channel.size();
		HeaderReader in = new HeaderReader(path, channel);
		int magic = in.int32();
		if (magic != MAGIC) {
			throw new CheckpointException(
					"%s is not a GGUF file (magic 0x%08x, expected 0x%08x)".formatted(path, magic, MAGIC));
		}
		int version = in.int32();
		if (version != 2 && version != 3) {
			throw new CheckpointException(
					"%s: GGUF version %d is not supported (expected 2 or 3)".formatted(path, version));
		}
		long tensorCount = in.int64();
		long kvCount = in.int64();
		if (tensorCount < 0 || tensorCount > 1_000_000 || kvCount < 0 || kvCount > 1_000_000) {
			throw new CheckpointException(
					"%s: implausible header (%d tensors, %d metadata entries)".formatted(path, tensorCount, kvCount));
		}
		Map<String, Object> metadata = new LinkedHashMap<>();
		for (long i = 0; i < kvCount; i++) {
			String key = in.string();
			int type = in.int32();
			metadata.put(key, in.value(type, key));
		}
		List<TensorInfo> infos = new ArrayList<>();
		for (long i = 0; i < tensorCount; i++) {
			String name = in.string();
			int dims = in.int32();
			if (dims < 1 || dims > 4) {
				throw new CheckpointException("%s: tensor '%s' has %d dimensions".formatted(path, name, dims));
			}
			long[] shape = new long[dims];
			for (int d = 0; d < dims; d++) {
				shape[dims - 1 - d] = in.int64();
			}
			int typeId = in.int32();
			long offset = in.int64();
			GgmlType type = GgmlType.byId(typeId);
			if (type == null) {
				throw new CheckpointException(
						"%s: tensor '%s' has unknown GGML type id %d".formatted(path, name, typeId));
			}
			long elements = Arrays.stream(shape).reduce(1, Math::multiplyExact);
			infos.add(new TensorInfo(name, shape, type, offset, type.byteSize(elements)));
		}
		Object alignmentValue = metadata.getOrDefault("general.alignment", DEFAULT_ALIGNMENT);
		long alignment = ((Number) alignmentValue).longValue();
		long dataOffset = (in.position() + alignment - 1) / alignment * alignment;
		Map<String, TensorInfo> tensors = new LinkedHashMap<>();
		for (TensorInfo info : infos) {
			long end = dataOffset + info.offset() + info.byteSize();
			if (end > fileSize) {
				throw new CheckpointException(
						"%s is truncated: tensor '%s' (%s, shape %s) needs bytes up to %d but the file has %d"
							.formatted(path, info.name(), info.type(), Arrays.toString(info.shape()), end, fileSize));
			}
			tensors.put(info.name(), info);
		}
		return new GgufFile(path, channel, version, Collections.unmodifiableMap(metadata),
				Collections.unmodifiableMap(tensors), dataOffset);
	}

	public Path path() {
		return this.path;
	}

	public int version() {
		return this.version;
	}

	public Map<String, Object> metadata() {
		return this.metadata;
	}

	public Map<String, TensorInfo> tensors() {
		return this.tensors;
	}

	public String string(String key) {
		Object value = this.metadata.get(key);
		return (value instanceof String s) ? s : null;
	}

	public Number number(String key) {
		Object value = this.metadata.get(key);
		return (value instanceof Number n) ? n : null;
	}

	/**
	 * Reads {@code length} bytes of a tensor from {@code offset} within it: positional
	 * reads into a reused buffer rather than a mapping, so the file's pages are not
	 * counted in the process's resident memory while a model loads. Valid until the next
	 * read.
	 */
	private ByteBuffer bytes(TensorInfo info, long offset, long length) {
		if (length > Integer.MAX_VALUE - 8) {
			throw new CheckpointException(
					"%s: cannot read %d bytes of tensor '%s' at once".formatted(this.path, length, info.name()));
		}
		ByteBuffer buffer = this.scratch.take((int) length);
		long start = this.dataOffset + info.offset() + offset;
		try {
			if (!FileReads.readFully(this.channel, buffer, start)) {
				throw new CheckpointException("%s: tensor '%s' is truncated (the file ends before its data)"
					.formatted(this.path, info.name()));
			}
		}
		catch (IOException ex) {
			throw new CheckpointException("cannot read tensor '%s' of %s: %s".formatted(info.name(), this.path, ex),
					ex);
		}
		return buffer.flip();
	}

	/** Dequantises a whole tensor to float32. */
	public float[] dequantize(TensorInfo info) {
		long elements = info.elements();
		if (elements > Integer.MAX_VALUE - 8) {
			throw new CheckpointException("%s: tensor '%s' has %d elements, more than one array can hold"
				.formatted(this.path, info.name(), elements));
		}
		float[] out = new float[(int) elements];
		dequantizeRows(info, 0, Math.toIntExact(info.shape()[0]), out);
		return out;
	}

	/**
	 * Dequantises rows [from, from + count) of a tensor (its outermost dimension) to
	 * float32, into {@code out[0, count * columns)}.
	 */
	public synchronized void dequantizeRows(TensorInfo info, long from, int count, float[] out) {
		if (!info.type().isSupported()) {
			throw new CheckpointException("%s: tensor '%s' uses quantisation %s, which is not supported (supported: %s)"
				.formatted(this.path, info.name(), info.type(), supportedTypes()));
		}
		long columns = info.elements() / info.shape()[0];
		if (from < 0 || count < 0 || from + count > info.shape()[0]) {
			throw new IllegalArgumentException("rows [%d, %d) of tensor '%s' %s".formatted(from, from + count,
					info.name(), Arrays.toString(info.shape())));
		}
		int elements = Math.toIntExact(count * columns);
		GgmlType type = info.type();
		type.dequantize(bytes(info, type.byteSize(from * columns), type.byteSize(elements)), out, 0, elements);
	}

	static String supportedTypes() {
		return Arrays.stream(GgmlType.values()).filter(GgmlType::isSupported).map(Enum::name).toList().toString();
	}

	@Override
	public synchronized void close() throws IOException {
		this.scratch.release();
		this.channel.close();
	}

	/**
	 * Sequential reader over the header, buffered, with bounds checked against the file
	 * size.
	 */
	private static final class HeaderReader {

		private final Path path;

		private final FileChannel channel;

		private final ByteBuffer buffer = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);

		private long bufferStart;

		HeaderReader(Path path, FileChannel channel) throws IOException {
			this.path = path;
			this.channel = channel;
			this.buffer.limit(0);
		}

		long position() {
			return this.bufferStart + this.buffer.position();
		}

		private void need(int bytes) throws IOException {
			if (this.buffer.remaining() >= bytes) {
				return;
			}
			long position = position();
			this.buffer.compact();
			this.bufferStart = position;
			while (this.buffer.position() < bytes) {
				int read = this.channel.read(this.buffer, this.bufferStart + this.buffer.position());
				if (read < 0) {
					throw new CheckpointException(
							"%s is truncated: the header ends at byte %d".formatted(this.path, this.channel.size()));
				}
			}
			this.buffer.flip();
		}

		int int32() throws IOException {
			need(4);
			return this.buffer.getInt();
		}

		long int64() throws IOException {
			need(8);
			return this.buffer.getLong();
		}

		String string() throws IOException {
			long length = int64();
			if (length < 0 || length > (1 << 24)) {
				throw new CheckpointException(
						"%s: implausible string length %d at byte %d".formatted(this.path, length, position()));
			}
			byte[] bytes = new byte[(int) length];
			int done = 0;
			while (done < bytes.length) {
				need(1);
				int chunk = Math.min(this.buffer.remaining(), bytes.length - done);
				this.buffer.get(bytes, done, chunk);
				done += chunk;
			}
			return new String(bytes, StandardCharsets.UTF_8);
		}

		Object value(int type, String key) throws IOException {
			switch (type) {
				case 0, 1 -> {
					need(1);
					byte b = this.buffer.get();
					return (type == 0) ? (int) (b & 0xFF) : (int) b;
				}
				case 2, 3 -> {
					need(2);
					short s = this.buffer.getShort();
					return (type == 2) ? (int) (s & 0xFFFF) : (int) s;
				}
				case 4 -> {
					return Integer.toUnsignedLong(int32());
				}
				case 5 -> {
					return int32();
				}
				case 6 -> {
					need(4);
					return this.buffer.getFloat();
				}
				case 7 -> {
					need(1);
					return this.buffer.get() != 0;
				}
				case 8 -> {
					return string();
				}
				case 9 -> {
					int elementType = int32();
					long count = int64();
					if (count < 0 || count > (1 << 26)) {
						throw new CheckpointException(
								"%s: metadata '%s' has implausible array length %d".formatted(this.path, key, count));
					}
					List<Object> values = new ArrayList<>((int) count);
					for (long i = 0; i < count; i++) {
						values.add(value(elementType, key));
					}
					return Collections.unmodifiableList(values);
				}
				case 10, 11 -> {
					return int64();
				}
				case 12 -> {
					need(8);
					return this.buffer.getDouble();
				}
				default -> throw new CheckpointException(
						"%s: metadata '%s' has unknown value type %d".formatted(this.path, key, type));
			}
		}

	}

}

package dev.griffin.serve.weights;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/** Positional reads that fill a whole buffer from a checkpoint file. */
final class FileReads {

	private FileReads() {
	}

	/**
	 * Fills {@code buffer} (from its position) with the file's bytes from {@code start}
	 * on; false if the file ends first.
	 */
	static boolean readFully(FileChannel channel, ByteBuffer buffer, long start) throws IOException {
		int origin = buffer.position();
		while (buffer.hasRemaining()) {
			if (channel.read(buffer, start + buffer.position() - origin) < 0) {
				return false;
			}
		}
		return true;
	}

}

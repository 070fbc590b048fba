package dev.griffin.serve.weights;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Memory a load frees (packed copies its plan does not read) goes back to the kernel when
 * asked, although the fixed trim threshold keeps freed memory in the process otherwise.
 */
class NativeAllocatorTests {

	private static final int CHUNKS = 256;

	private static final long CHUNK = 1 << 20;

	@Test
	void freedMemoryIsGivenBackWhenAsked() {
		NativeAllocator.tune();
		long[] chunks = new long[CHUNKS];
		for (int i = 0; i < CHUNKS; i++) {
			chunks[i] = Native.malloc(CHUNK);
			assertThat(chunks[i]).as("malloc").isNotZero();
			new Pointer(chunks[i]).setMemory(0, CHUNK, (byte) 1);
		}
		for (long chunk : chunks) {
			Native.free(chunk);
		}
		ResidentMemory.Sample before = ResidentMemory.sample();
		String line = NativeAllocator.giveBack();
		ResidentMemory.Sample after = ResidentMemory.sample();
		assertThat(line).startsWith("resident memory ");
		// 256 MiB were written and freed; at least half of it leaves the process
		assertThat(before.residentKb() - after.residentKb()).as("KiB given back").isGreaterThan(128 << 10);
	}

}

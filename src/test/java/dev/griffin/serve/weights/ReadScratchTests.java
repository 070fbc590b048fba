package dev.griffin.serve.weights;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** Reads share one buffer up to a limit, each seeing exactly the bytes it asked for. */
class ReadScratchTests {

	@Test
	void smallReadsShareOneBufferOfExactlyTheLengthAsked() {
		ReadScratch scratch = new ReadScratch();
		ByteBuffer first = scratch.take(100);
		assertThat(first.position()).isZero();
		assertThat(first.remaining()).isEqualTo(100);
		assertThat(first.order()).isEqualTo(ByteOrder.LITTLE_ENDIAN);
		first.putInt(7);
		ByteBuffer second = scratch.take(10);
		assertThat(second).isSameAs(first);
		assertThat(second.position()).isZero();
		assertThat(second.remaining()).isEqualTo(10);
		ByteBuffer grown = scratch.take(1 << 20);
		assertThat(grown.remaining()).isEqualTo(1 << 20);
		assertThat(scratch.take(5000)).isSameAs(grown);
	}

	@Test
	void aReadBeyondTheLimitGetsItsOwnBuffer() {
		ReadScratch scratch = new ReadScratch();
		ByteBuffer kept = scratch.take(1000);
		ByteBuffer large = scratch.take(ReadScratch.LIMIT + 1);
		assertThat(large).isNotSameAs(kept);
		assertThat(large.remaining()).isEqualTo(ReadScratch.LIMIT + 1);
		assertThat(scratch.take(10)).isSameAs(kept);
	}

}

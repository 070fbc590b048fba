package dev.griffin.serve.model;

import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.generation.InferenceSession;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The KV arena's ranges: first fit, freed ranges merged with their neighbours, refusals
 * when nothing fits, and sessions that take a range and give it back.
 */
class KvArenaTests {

	private CausalLm model;

	private KvArena arena;

	@BeforeEach
	void load() {
		this.model = TinyModelGoldenTests.load("tiny-llama", ModelOptions.CPU_FLOAT32, NDManager.newBaseManager());
		this.arena = new KvArena(this.model, 100);
	}

	@AfterEach
	void close() {
		this.arena.close();
		this.model.close();
	}

	@Test
	void takesTheFirstRangeThatFitsAndMergesFreedNeighbours() {
		assertThat(this.arena.allocate(30)).isZero();
		assertThat(this.arena.allocate(30)).isEqualTo(30);
		assertThat(this.arena.allocate(30)).isEqualTo(60);
		assertThat(this.arena.allocate(11)).as("10 tokens are left").isEqualTo(-1);
		this.arena.release(0, 30);
		this.arena.release(60, 30);
		assertThat(this.arena.freeTokens()).isEqualTo(70);
		assertThat(this.arena.allocate(40)).as("free: [0, 30) and [60, 100)").isEqualTo(60);
		this.arena.release(30, 30);
		assertThat(this.arena.allocate(60)).as("[0, 30) and [30, 60) merged").isZero();
		this.arena.release(60, 40);
		this.arena.release(0, 60);
		assertThat(this.arena.allocate(100)).as("everything merged again").isZero();
	}

	@Test
	void refusesRangesItDidNotGiveOut() {
		this.arena.allocate(50);
		assertThatThrownBy(() -> this.arena.release(60, 10)).isInstanceOf(IllegalStateException.class)
			.hasMessageContaining("already free");
		assertThatThrownBy(() -> this.arena.release(90, 20)).isInstanceOf(IllegalArgumentException.class);
		assertThatThrownBy(() -> this.arena.allocate(0)).isInstanceOf(IllegalArgumentException.class);
	}

	@Test
	void sessionsTakeARangeAndGiveItBackOrKeepTheirOwnCache() {
		try (InferenceSession first = new InferenceSession(this.model, 60, 0, this.arena);
				InferenceSession second = new InferenceSession(this.model, 60, 0, this.arena)) {
			assertThat(first.inArena()).isTrue();
			assertThat(second.inArena()).as("40 tokens are left").isFalse();
			assertThat(this.arena.freeTokens()).isEqualTo(40);
		}
		assertThat(this.arena.freeTokens()).isEqualTo(100);
		try (NDManager other = NDManager.newBaseManager()) {
			CausalLm elsewhere = TinyModelGoldenTests.load("tiny-llama", ModelOptions.CPU_FLOAT32, other);
			try (InferenceSession session = new InferenceSession(elsewhere, 10, 0, this.arena)) {
				assertThat(session.inArena()).as("a model over other weights").isFalse();
			}
		}
	}

}

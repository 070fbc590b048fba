package dev.griffin.serve.generation;

import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import ai.djl.ndarray.BaseNDManager;
import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * 800 GRIFFIN decode steps on the default model leave no NDArray behind and no upward
 * trend in the process's resident memory.
 */
public class NativeMemoryIT {

	private static final int STEPS = 800;

	@Test
	void decodeKeepsNativeMemoryFlat() throws Exception {
		try (LoadedModel loaded = LoadedModel.load(Fixtures.defaultModel(), ModelOptions.CPU_FLOAT32, (layers) -> {
		})) {
			CausalLm griffin = loaded.variant(0.5, SelectionMethod.TOPK);
			int[] prompt = loaded.tokenizer().encode("Memory must stay flat while we decode for a long time.");
			int liveBefore = liveArrays(griffin.manager());
			List<long[]> rss = new ArrayList<>();
			try (InferenceSession session = new InferenceSession(griffin, prompt.length + STEPS + 1)) {
				float[] logits = session.prefill(prompt, prompt.length);
				session.finishPrompt();
				// the experts' weights, which the first lone step would gather
				session.gatherWeights();
				int liveAfterPrompt = liveArrays(griffin.manager());
				for (int step = 0; step < STEPS; step++) {
					logits = session.decode(argmax(logits));
					if (step % 50 == 49) {
						rss.add(new long[] { step, residentBytes() });
					}
				}
				assertThat(liveArrays(griffin.manager())).as("live NDArrays after %d decode steps", STEPS)
					.isEqualTo(liveAfterPrompt);
			}
			assertThat(liveArrays(griffin.manager())).as("live NDArrays after the session closed")
				.isEqualTo(liveBefore);
			// Least-squares slope of RSS over steps 300..800 (the KV cache is
			// preallocated, nothing should grow).
			List<long[]> tail = rss.subList(5, rss.size());
			double slope = slope(tail);
			long first = tail.get(0)[1];
			long last = tail.get(tail.size() - 1)[1];
			System.out.printf("RSS from step %d to %d: %.1f MB -> %.1f MB, slope %.1f bytes/step%n", tail.get(0)[0],
					tail.get(tail.size() - 1)[0], first / 1e6, last / 1e6, slope);
			assertThat(slope).as("RSS growth per decode step (bytes)").isLessThan(2048);
		}
	}

	/** Arrays a manager and its children hold, read from DJL's resource map. */
	public static int liveArrays(NDManager manager) throws ReflectiveOperationException {
		Field field = BaseNDManager.class.getDeclaredField("resources");
		field.setAccessible(true);
		int count = 0;
		for (Object resource : ((Map<?, ?>) field.get(manager)).values()) {
			count += (resource instanceof NDManager child) ? liveArrays(child) : 1;
		}
		return count;
	}

	static long residentBytes() throws IOException {
		String[] statm = Files.readString(Path.of("/proc/self/statm")).trim().split("\\s+");
		return Long.parseLong(statm[1]) * 4096;
	}

	static double slope(List<long[]> points) {
		double n = points.size();
		double sx = 0;
		double sy = 0;
		double sxx = 0;
		double sxy = 0;
		for (long[] p : points) {
			sx += p[0];
			sy += p[1];
			sxx += (double) p[0] * p[0];
			sxy += (double) p[0] * p[1];
		}
		return (n * sxy - sx * sy) / (n * sxx - sx * sx);
	}

	static int argmax(float[] values) {
		return Sampler.argmax(values);
	}

}

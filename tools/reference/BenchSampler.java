import java.util.List;
import java.util.SplittableRandom;

import dev.griffin.serve.generation.Sampler;
import dev.griffin.serve.generation.SamplingParams;

/**
 * Times the sampler's draw of one token over a vocabulary of SmolLM2's size (49,152
 * Gaussian logits, standard deviation 2.5) at four settings, as milliseconds per token.
 * Run from the repository root after a build, with JNA (which binds the native sampling
 * kernel) and SLF4J's API from the local Maven repository:
 *
 * <pre>
 * M2=~/.m2/repository
 * java -cp "target/classes:$(find $M2/net/java/dev/jna/jna -name 'jna-*.jar' | sort -V | tail -1):$(find \
 *     $M2/org/slf4j/slf4j-api -name 'slf4j-api-*.jar' | sort -V | tail -1)" tools/reference/BenchSampler.java
 * </pre>
 *
 * An older sampler compiled into a directory put first on the class path is timed the
 * same way.
 */
public final class BenchSampler {

	private BenchSampler() {
	}

	public static void main(String[] args) {
		int vocabulary = 49_152;
		SplittableRandom random = new SplittableRandom(1);
		float[] logits = new float[vocabulary];
		for (int i = 0; i < vocabulary; i++) {
			logits[i] = (float) (random.nextGaussian() * 2.5);
		}
		// temperature, top_k, top_p, min_p
		double[][] settings = { { 1.0, 0, 1, 0 }, { 0.7, 0, 0.9, 0 }, { 1.0, 40, 1, 0 }, { 1.0, 0, 1, 0.05 } };
		for (double[] setting : settings) {
			SamplingParams params = new SamplingParams(setting[0], (int) setting[1], setting[2], setting[3], 1, 0, 0,
					7L, 16, List.of(), List.of(), false);
			Sampler sampler = new Sampler(params, vocabulary, new int[0]);
			for (int i = 0; i < 2000; i++) {
				sampler.sample(logits.clone());
			}
			int draws = 3000;
			long start = System.nanoTime();
			for (int i = 0; i < draws; i++) {
				sampler.sample(logits.clone());
			}
			System.out.printf("temperature %.1f, top_k %d, top_p %.2f, min_p %.2f: %.3f ms per token%n", setting[0],
					(int) setting[1], setting[2], setting[3], (System.nanoTime() - start) / 1e6 / draws);
		}
	}

}

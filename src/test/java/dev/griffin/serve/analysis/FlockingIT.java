package dev.griffin.serve.analysis;

import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;

import javax.imageio.ImageIO;

import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.model.ModelOptions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Flocking on the default model: Jaccard per layer, and a real PNG heatmap for a short
 * prompt.
 */
class FlockingIT {

	@Test
	void measuresFlockingAndRendersAHeatmap() throws Exception {
		try (LoadedModel model = LoadedModel.load(Fixtures.defaultModel(), ModelOptions.CPU_FLOAT32, (layers) -> {
		})) {
			int[] prompt = model.tokenizer().encode("The quick brown fox jumps over the lazy dog because it was");
			Flocking.Result result = Flocking.measure(model.dense(), prompt, 12, 0.5);
			assertThat(result.activations()).hasSize(30);
			assertThat(result.activations().get(0)).hasSize(prompt.length + 12);
			assertThat(result.experts()).isEqualTo(768);
			for (double jaccard : result.jaccard()) {
				assertThat(jaccard).isBetween(0.0, 1.0);
			}
			// flocking: prompt experts overlap generated tokens' top neurons more than
			// chance, which for two random sets of k of F neurons is a Jaccard of k / (2F
			// - k), 1/3 at k = F/2
			double chance = 768.0 / (2 * 1536 - 768);
			double mean = java.util.Arrays.stream(result.jaccard()).average().orElseThrow();
			System.out.printf("mean Jaccard over layers %.3f; per layer %s%n", mean,
					java.util.Arrays.toString(result.jaccard()));
			assertThat(mean).isGreaterThan(chance + 0.02);
			byte[] png = Flocking.heatmap(result, 15);
			BufferedImage image = ImageIO.read(new ByteArrayInputStream(png));
			assertThat(image).isNotNull();
			assertThat(image.getWidth()).isGreaterThan(1536);
			assertThat(image.getHeight()).isGreaterThan(prompt.length + 12);
			java.nio.file.Files.createDirectories(java.nio.file.Path.of("target"));
			java.nio.file.Files.write(java.nio.file.Path.of("target/flocking-layer15.png"), png);
		}
	}

}

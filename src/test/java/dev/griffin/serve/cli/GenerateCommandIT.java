package dev.griffin.serve.cli;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code generate} from the packaged jar: the generated text alone on stdout (so it can
 * be piped), load progress, logs and timings on stderr. Its JVM gets far less direct
 * memory than the float32 weights take: the weights live in libtorch's memory, so a model
 * loads in any precision with the JVM's defaults, and loading grows resident memory by at
 * most 1.2x the weights it loads.
 */
class GenerateCommandIT {

	@TempDir
	Path root;

	private static final Pattern WEIGHTS = Pattern.compile(
			"weights: (\\d+) MiB of (\\w+) on cpu\\(\\) in [0-9.]+ s; resident memory (\\d+) MiB before, peak (\\d+) MiB");

	@ParameterizedTest
	@ValueSource(strings = { "float32", "float16" })
	void stdoutHoldsOnlyTheGeneratedText(String dtype) throws Exception {
		Path jar = Files.list(Path.of("target"))
			.filter((p) -> p.getFileName().toString().matches("griffin-serve-.*\\.jar"))
			.findFirst()
			.orElseThrow(() -> new AssertionError("build the jar first (mvn package)"));
		Path out = this.root.resolve("out.txt");
		Path err = this.root.resolve("err.txt");
		Process process = new ProcessBuilder(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
				"-XX:MaxDirectMemorySize=64m", "-jar", jar.toString(), "generate", "--dtype", dtype, "--prompt",
				"The capital of France is", "-n", "8", "--temperature", "0"))
			.redirectOutput(out.toFile())
			.redirectError(err.toFile())
			.start();
		assertThat(process.waitFor(300, TimeUnit.SECONDS)).isTrue();
		String stderr = Files.readString(err, StandardCharsets.UTF_8);
		assertThat(process.exitValue()).as(stderr).isZero();
		String stdout = Files.readString(out, StandardCharsets.UTF_8);
		assertThat(stdout).endsWith("\n");
		assertThat(stdout.strip()).as("the continuation of the prompt").isNotEmpty().contains("Paris");
		assertThat(stdout.lines()).as("no log line on stdout")
			.noneMatch((line) -> line.matches("\\d\\d:\\d\\d:\\d\\d\\.\\d{3} .*"));
		assertThat(stdout).doesNotContain("INFO", "WARN", "loading", "tokens/s", "ai.djl");
		// what was on stdout before logs moved: engine logs and progress
		assertThat(stderr).contains("loading ", "INFO", "tokens/s");
		Matcher weights = WEIGHTS.matcher(stderr);
		assertThat(weights.find()).as(stderr).isTrue();
		assertThat(weights.group(2)).isEqualTo(dtype);
		long weightsMi = Long.parseLong(weights.group(1));
		assertThat(weightsMi).isGreaterThan(dtype.equals("float32") ? 500 : 250);
		long growthMi = Long.parseLong(weights.group(4)) - Long.parseLong(weights.group(3));
		assertThat(growthMi).as("resident memory's growth while loading %d MiB of weights", weightsMi)
			.isLessThanOrEqualTo(weightsMi * 6 / 5);
	}

}

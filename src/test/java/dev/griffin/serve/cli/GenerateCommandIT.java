package dev.griffin.serve.cli;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code generate} from the packaged jar: the generated text alone on stdout (so it can
 * be piped), load progress, logs and timings on stderr. Its JVM gets far less direct
 * memory than the float32 weights take: the weights live in libtorch's memory, so a model
 * loads in any precision with the JVM's defaults, and loading grows resident memory by at
 * most 1.2x the weights it loads. On Qwen2.5-Coder-1.5B that holds for the whole load,
 * its kernels chosen, too: calibration makes no packed copies where the native forms run.
 */
class GenerateCommandIT {

	@TempDir
	Path root;

	private static final Pattern WEIGHTS = Pattern.compile(
			"weights: (\\d+) MiB of (\\w+) on cpu\\(\\) in [0-9.]+ s; resident memory (\\d+) MiB before, peak (\\d+) MiB");

	private static final Pattern LOADED = Pattern
		.compile("loaded with its kernels chosen: resident memory (\\d+) MiB before, peak (\\d+) MiB");

	@ParameterizedTest
	@ValueSource(strings = { "float32", "float16" })
	void stdoutHoldsOnlyTheGeneratedText(String dtype) throws Exception {
		String[] output = generate(List.of("-XX:MaxDirectMemorySize=64m"),
				List.of("--dtype", dtype, "--prompt", "The capital of France is", "-n", "8", "--temperature", "0"));
		String stdout = output[0];
		String stderr = output[1];
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

	@ParameterizedTest
	@ValueSource(strings = { "float32", "float16" })
	void aLargerModelsWholeLoadStaysWithinAFifthMoreThanItsWeights(String dtype) throws Exception {
		String model = Fixtures.namedModel("qwen2.5-coder-1.5b").toString();
		String[] output = generate(List.of(), List.of("--model", model, "--dtype", dtype, "--prompt", "def add(a, b):",
				"-n", "2", "--temperature", "0"));
		String stderr = output[1];
		Matcher weights = WEIGHTS.matcher(stderr);
		assertThat(weights.find()).as(stderr).isTrue();
		long weightsMi = Long.parseLong(weights.group(1));
		assertThat(weightsMi).isGreaterThan(dtype.equals("float32") ? 6000 : 3000);
		Matcher loaded = LOADED.matcher(stderr);
		assertThat(loaded.find()).as(stderr).isTrue();
		long growthMi = Long.parseLong(loaded.group(2)) - Long.parseLong(loaded.group(1));
		assertThat(growthMi)
			.as("resident memory's growth over the load of %d MiB of weights, calibration included", weightsMi)
			.isLessThanOrEqualTo(weightsMi * 6 / 5);
	}

	/**
	 * {@code generate} from the packaged jar, with the JVM's defaults but {@code jvm}.
	 */
	private String[] generate(List<String> jvm, List<String> arguments) throws Exception {
		Path jar = Files.list(Path.of("target"))
			.filter((p) -> p.getFileName().toString().matches("griffin-serve-.*\\.jar"))
			.findFirst()
			.orElseThrow(() -> new AssertionError("build the jar first (mvn package)"));
		Path out = this.root.resolve("out.txt");
		Path err = this.root.resolve("err.txt");
		List<String> command = new ArrayList<>();
		command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
		command.addAll(jvm);
		command.addAll(List.of("-jar", jar.toString(), "generate"));
		command.addAll(arguments);
		Process process = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
		assertThat(process.waitFor(300, TimeUnit.SECONDS)).isTrue();
		String stderr = Files.readString(err, StandardCharsets.UTF_8);
		assertThat(process.exitValue()).as(stderr).isZero();
		return new String[] { Files.readString(out, StandardCharsets.UTF_8), stderr };
	}

}

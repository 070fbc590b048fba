package dev.griffin.serve.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code overlap} measures the experts prompts select, so a method that selects later, or
 * none at all, is refused before any model loads.
 */
class OverlapCommandTests {

	@Test
	void aMethodThatSelectsAfterThePromptIsRefused() {
		assertThat(refusal("delayed")).contains("--method delayed selects after the reply's first tokens");
		assertThat(refusal("nonesuch")).contains("selection method 'nonesuch' is not one of");
	}

	private static String refusal(String method) {
		StringWriter err = new StringWriter();
		CommandLine command = new CommandLine(new OverlapCommand()).setErr(new PrintWriter(err));
		int exit = command.execute("--input", "missing.jsonl", "--density", "0.5", "--method", method);
		assertThat(exit).as(method).isEqualTo(CommandLine.ExitCode.USAGE);
		return err.toString();
	}

}

package dev.griffin.serve.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import static org.assertj.core.api.Assertions.assertThat;

/** Options that apply to one task are refused with another, not ignored. */
class EvalCommandTests {

	@Test
	void chatAppliesToTheSummarisationAndFidelityTasksOnly() {
		StringWriter err = new StringWriter();
		CommandLine command = new CommandLine(new EvalCommand()).setErr(new PrintWriter(err));
		int exit = command.execute("--task", "questions", "--input", "missing.jsonl", "--chat");
		assertThat(exit).isEqualTo(CommandLine.ExitCode.USAGE);
		assertThat(err.toString()).contains("--chat applies to --task xsum and fidelity only");
	}

}

package dev.griffin.serve.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

import dev.griffin.serve.weights.CheckpointException;

/** The command line: {@code generate}, {@code bench}. */
@Command(name = "griffin-serve", mixinStandardHelpOptions = true, version = "griffin-serve 0.1.0",
		description = "LLM generation with GRIFFIN feed-forward expert selection on DJL PyTorch.",
		subcommands = { GenerateCommand.class, BenchCommand.class })
public class GriffinCli implements Runnable {

	@Override
	public void run() {
		new CommandLine(this).usage(System.out);
	}

	public static void main(String[] args) {
		CommandLine commandLine = new CommandLine(new GriffinCli());
		commandLine.setExecutionExceptionHandler((ex, cmd, parsed) -> {
			if (ex instanceof CheckpointException || ex instanceof IllegalArgumentException
					|| ex instanceof IllegalStateException) {
				cmd.getErr().println("error: " + ex.getMessage());
				return 2;
			}
			throw ex;
		});
		System.exit(commandLine.execute(args));
	}

}

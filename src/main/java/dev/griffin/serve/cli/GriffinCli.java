package dev.griffin.serve.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

import dev.griffin.serve.weights.CheckpointException;

/** The command line: {@code serve} (the default), {@code generate}, {@code bench}. */
@Command(name = "griffin-serve", mixinStandardHelpOptions = true, version = "griffin-serve 0.1.0",
		description = "LLM generation with GRIFFIN feed-forward expert selection on DJL PyTorch.",
		subcommands = { ServeCommand.class, GenerateCommand.class, BenchCommand.class, EvalCommand.class,
				OverlapCommand.class, PlotsCommand.class, PriorCommand.class })
public class GriffinCli implements Runnable {

	private static final String LOGBACK_CONFIGURATION = "logback.configurationFile";

	@Override
	public void run() {
		new CommandLine(this).usage(System.out);
	}

	public static void main(String[] args) {
		if (args.length == 0 || args[0].startsWith("--")) {
			// no command: serve, with the arguments as Spring options
			String[] serve = new String[args.length + 1];
			serve[0] = "serve";
			System.arraycopy(args, 0, serve, 1, args.length);
			args = serve;
		}
		if (!"serve".equals(args[0]) && System.getProperty(LOGBACK_CONFIGURATION) == null) {
			// before the first logger exists: the other commands log to stderr only
			System.setProperty(LOGBACK_CONFIGURATION, "logback-cli.xml");
		}
		CommandLine commandLine = new CommandLine(new GriffinCli());
		commandLine.setExecutionExceptionHandler((ex, cmd, parsed) -> {
			if (ex instanceof CheckpointException || ex instanceof IllegalArgumentException
					|| ex instanceof IllegalStateException) {
				cmd.getErr().println("error: " + ex.getMessage());
				return 2;
			}
			throw ex;
		});
		int exit = commandLine.execute(args);
		if (commandLine.getParseResult() != null && commandLine.getParseResult().subcommand() != null
				&& "serve".equals(commandLine.getParseResult().subcommand().commandSpec().name()) && exit == 0) {
			return; // the service keeps running on its own threads
		}
		System.exit(exit);
	}

}

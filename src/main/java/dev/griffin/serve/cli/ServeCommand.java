package dev.griffin.serve.cli;

import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Unmatched;

import org.springframework.boot.SpringApplication;

import dev.griffin.serve.GriffinServeApplication;

/**
 * Starts the HTTP service; Spring Boot options pass through ({@code --server.port=9000}).
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
		description = "Start the OpenAI-compatible service (default command). Spring options pass through, "
				+ "e.g. --server.port=9000 --griffin.generation.default-density=0.5.")
public class ServeCommand implements Callable<Integer> {

	@Unmatched
	String[] springArguments = new String[0];

	@Override
	public Integer call() {
		SpringApplication.run(GriffinServeApplication.class, this.springArguments);
		return null;
	}

}

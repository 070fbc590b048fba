package dev.griffin.serve;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/** The service: OpenAI-compatible streaming API over the GRIFFIN engine. */
@SpringBootApplication
public class GriffinServeApplication {

	public static void main(String[] args) {
		SpringApplication.run(GriffinServeApplication.class, args);
	}

}

package dev.griffin.serve.cli;

import java.io.PrintStream;

import dev.griffin.serve.generation.LoadedModel;

/** Model-load progress on stderr. */
final class Progress {

	private Progress() {
	}

	static LoadedModel load(ModelOptionsMixin options, PrintStream err) {
		err.printf("loading %s (%s, %s)%n", options.modelPath(), options.dtype, options.device);
		return options.load((layers) -> {
			err.printf("\rlayers loaded: %d", layers);
			err.flush();
		});
	}

}

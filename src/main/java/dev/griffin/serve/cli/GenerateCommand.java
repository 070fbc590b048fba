package dev.griffin.serve.cli;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.LoadedModel;
import dev.griffin.serve.generation.SamplingParams;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.tokenizer.ChatTemplate;

/** Generates text for one prompt or chat message, streaming tokens to stdout. */
@Command(name = "generate", mixinStandardHelpOptions = true,
		description = "Generate text for a prompt (or a chat message), streamed to stdout; progress goes to stderr.")
public class GenerateCommand implements Callable<Integer> {

	@Mixin
	ModelOptionsMixin model;

	@ArgGroup(exclusive = true, multiplicity = "1")
	Input input;

	static class Input {

		@Option(names = { "-p", "--prompt" }, description = "Raw prompt text.")
		String prompt;

		@Option(names = { "-c", "--chat" }, description = "A user message, wrapped in the model's chat template.")
		String chat;

	}

	@Option(names = "--system", description = "System message for --chat.")
	String system;

	@Option(names = "--density", defaultValue = "1.0",
			description = "GRIFFIN: fraction of feed-forward neurons kept for generation; 1.0 runs the dense model (default: ${DEFAULT-VALUE}).")
	double density;

	@Option(names = "--method", defaultValue = "topk",
			description = "GRIFFIN selection: topk, sample, topk_sample, random, magnitude, wina, glass, layerwise, delayed, dense_start (glass and layerwise need the model's neuron prior; default: ${DEFAULT-VALUE}).")
	String method;

	@Option(names = { "-n", "--max-tokens" }, defaultValue = "128", description = "Most tokens to generate.")
	int maxTokens;

	@Option(names = "--temperature", defaultValue = "0", description = "0 for greedy (default: ${DEFAULT-VALUE}).")
	double temperature;

	@Option(names = "--top-k", defaultValue = "0")
	int topK;

	@Option(names = "--top-p", defaultValue = "1")
	double topP;

	@Option(names = "--min-p", defaultValue = "0")
	double minP;

	@Option(names = "--repetition-penalty", defaultValue = "1")
	double repetitionPenalty;

	@Option(names = "--presence-penalty", defaultValue = "0")
	double presencePenalty;

	@Option(names = "--frequency-penalty", defaultValue = "0")
	double frequencyPenalty;

	@Option(names = "--seed", description = "Makes sampling reproducible.")
	Long seed;

	@Option(names = "--stop", description = "Stop string (repeatable).")
	List<String> stop = new ArrayList<>();

	@Option(names = "--ignore-eos", description = "Keep generating through the model's end tokens.")
	boolean ignoreEos;

	@Override
	public Integer call() {
		this.model.configureEngine();
		PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
		PrintStream err = System.err;
		SamplingParams params = new SamplingParams(this.temperature, this.topK, this.topP, this.minP,
				this.repetitionPenalty, this.presencePenalty, this.frequencyPenalty, this.seed, this.maxTokens,
				this.stop, List.of(), this.ignoreEos);
		long start = System.nanoTime();
		try (LoadedModel loaded = Progress.load(this.model, err)) {
			err.printf("loaded %s in %.1f s%n", loaded.path().getFileName(), (System.nanoTime() - start) / 1e9);
			int[] prompt;
			if (this.input.chat == null) {
				prompt = loaded.tokenizer().encode(this.input.prompt);
			}
			else {
				if (loaded.tokenizer().chatTemplate() == null) {
					throw new IllegalArgumentException("the model has no chat template; use --prompt");
				}
				List<ChatTemplate.Message> messages = new ArrayList<>();
				if (this.system != null) {
					messages.add(new ChatTemplate.Message("system", this.system));
				}
				messages.add(new ChatTemplate.Message("user", this.input.chat));
				// as the server does: the messages are data, never template or control
				// tokens
				prompt = loaded.tokenizer().encodeChat(messages, true, false);
			}
			CausalLm variant = loaded.variant(this.density, ModelOptionsMixin.method(this.method));
			Generator generator = new Generator(variant, loaded.tokenizer());
			Generator.Result result = generator.generate(prompt, params, (token, piece) -> {
				out.print(piece);
				out.flush();
				return true;
			});
			out.println();
			Generator.Timings t = result.timings();
			err.printf(
					"%d prompt tokens, %d generated (%s); time to first token %.0f ms, decode %.1f tokens/s, "
							+ "density %.2f %s%n",
					result.promptTokens(), result.tokens().length, result.finishReason().wireName(),
					t.firstTokenNanos() / 1e6, t.decodeTokensPerSecond(), this.density, this.method);
		}
		return 0;
	}

}

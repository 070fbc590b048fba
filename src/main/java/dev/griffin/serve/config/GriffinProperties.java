package dev.griffin.serve.config;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;

import dev.griffin.serve.griffin.DefaultDensity;
import dev.griffin.serve.griffin.SelectionMethod;

/**
 * Everything an operator tunes, under {@code griffin.*} in application.yaml (or GRIFFIN_*
 * environment variables).
 *
 * @param model what to load and how
 * @param generation defaults and limits of generation
 * @param cache the prompt cache
 * @param security API keys, tenants, CORS and request size
 */
@ConfigurationProperties("griffin")
public record GriffinProperties(@DefaultValue Model model, @DefaultValue Generation generation,
		@DefaultValue Cache cache, @DefaultValue Security security, @DefaultValue Memory memory) {

	/**
	 * @param limit the memory the service may use; empty: its container's limit, if any
	 * @param overhead what the budget reserves beyond heap, direct buffers, weights,
	 * cache and sequences (JVM metaspace, code and threads, libtorch, tokenizers)
	 */
	public record Memory(DataSize limit, @DefaultValue("768MB") DataSize overhead) {

	}

	/**
	 * @param source a Hub model, hf://org/name[@revision][/file.gguf], downloaded at
	 * start (overrides path)
	 * @param path a .gguf file or Hugging Face directory; empty for the default model in
	 * the model cache
	 * @param id the name clients use in {@code model}
	 * @param dtype float32 or float16
	 * @param device cpu or gpu[:N]
	 * @param threads engine compute threads, 0 for the engine's default
	 * @param decodeKernel auto (measured at load), pool, single, split, onednn (float32
	 * weights), layer or native
	 * @param prefillKernel auto (measured at load), weights, float32, onednn (float32
	 * weights), native or bfloat16 (only when named: it rounds beyond float tolerance)
	 * @param packWeights whether weights on the CPU get oneDNN-packed copies where a form
	 * that reads them can be chosen
	 * ({@link dev.griffin.serve.model.ModelOptions#packsAtLoad()}), as much memory again
	 * for the packed matrices
	 * @param prior the neuron prior of the glass and layerwise methods: empty for the
	 * file beside the model (when the prior command wrote one), {@code none} for no
	 * prior, or the path of a prior file
	 * @param kvCacheDtype the KV cache's precision on the CPU: auto (the weights'),
	 * float32 or float16 (on a GPU the model's dtype)
	 */
	public record Model(String source, Path path, @DefaultValue("SmolLM2-135M-Instruct") String id,
			@DefaultValue("float32") String dtype, @DefaultValue("cpu") String device, @DefaultValue("0") int threads,
			@DefaultValue("auto") String decodeKernel, @DefaultValue("auto") String prefillKernel,
			@DefaultValue("true") boolean packWeights, String prior, @DefaultValue("auto") String kvCacheDtype) {

	}

	/**
	 * @param defaultDensity GRIFFIN density when a request names none (1.0 is the dense
	 * model)
	 * @param denseBelowPromptTokens a request that names no density runs dense when its
	 * prompt has fewer tokens (0: never); see {@link DefaultDensity}
	 * @param defaultMethod GRIFFIN selection method when a request names none
	 * @param defaultMaxTokens max_tokens when a request names none
	 * @param maxTokensLimit the largest max_tokens a request may ask for
	 * @param workers sequences the engine decodes together in one batch
	 * @param kvArenaTokens tokens per worker of the engine's KV arena, where running
	 * sequences keep their caches so that batched steps attend in a few operations per
	 * layer (0: every sequence keeps a cache of its own; unused with one worker)
	 * @param queueCapacity requests waiting for the engine before new ones get 429
	 * @param keepAlive interval of SSE keep-alive comments while a stream waits
	 * @param warmUp run one generation before reporting ready
	 * @param maxConcurrentPerKey running plus queued requests of one API key
	 * @param tokensPerMinutePerKey prompt + max_tokens x n one API key may ask for per
	 * minute (0: no token budget)
	 * @param stallTimeout a stream whose client reads nothing for this long is cancelled
	 * and its connection closed
	 * @param promptGather how long an engine with no sequence decoding holds a new
	 * prompt's pass while other generation requests are still on their way to it (their
	 * bodies read, or being prepared), so that requests sent together share one pass (0:
	 * never)
	 * @param decodingPromptTokens prompt tokens a step runs at most while other sequences
	 * decode (512 otherwise): their next tokens wait for that work, so fewer make their
	 * streams smoother and a long prompt's first token later
	 */
	public record Generation(@DefaultValue("0.75") double defaultDensity,
			@DefaultValue("256") int denseBelowPromptTokens,
			@DefaultValue(SelectionMethod.SERVER_DEFAULT) String defaultMethod,
			@DefaultValue("256") int defaultMaxTokens, @DefaultValue("4096") int maxTokensLimit,
			@DefaultValue("4") int workers, @DefaultValue("2048") int kvArenaTokens,
			@DefaultValue("16") int queueCapacity, @DefaultValue("10s") Duration keepAlive,
			@DefaultValue("true") boolean warmUp, @DefaultValue("8") int maxConcurrentPerKey,
			@DefaultValue("200000") long tokensPerMinutePerKey, @DefaultValue("30s") Duration stallTimeout,
			@DefaultValue("20ms") Duration promptGather, @DefaultValue("128") int decodingPromptTokens) {

		public Generation {
			if (workers < 1 || kvArenaTokens < 0 || queueCapacity < 0 || defaultMaxTokens < 1 || maxTokensLimit < 1
					|| denseBelowPromptTokens < 0 || promptGather.isNegative() || decodingPromptTokens < 1) {
				throw new IllegalArgumentException("griffin.generation: workers >= 1, kv-arena-tokens >= 0, "
						+ "queue-capacity >= 0, default-max-tokens >= 1, dense-below-prompt-tokens >= 0 and "
						+ "prompt-gather >= 0 and decoding-prompt-tokens >= 1 are required");
			}
			// the one density rule, at startup rather than at the first request
			new DefaultDensity(defaultDensity, denseBelowPromptTokens);
		}

		/** The density of requests that name none. */
		public DefaultDensity defaultDensityRule() {
			return new DefaultDensity(this.defaultDensity, this.denseBelowPromptTokens);
		}

	}

	/**
	 * @param enabled whether processed prompts are cached
	 * @param maxSize the most native memory the cache holds
	 */
	public record Cache(@DefaultValue("true") boolean enabled, @DefaultValue("2GB") DataSize maxSize) {

	}

	/**
	 * @param apiKeys accepted bearer tokens; empty means no authentication
	 * @param tenantSalts per API key, the salt of its prompt-cache keys (default: derived
	 * from the key)
	 * @param corsAllowedOrigins origins allowed to call the API from a browser
	 * @param maxRequestSize the largest request body accepted
	 * @param publicDocs with API keys configured, serve Swagger UI and the OpenAPI
	 * document without a key (the probes are always public)
	 * @param controlTokensInContent let special-token text inside chat message content
	 * become control tokens (off: a user cannot forge roles with {@code <|im_start|>})
	 * @param maxConnections open HTTP connections beyond which new ones are closed
	 * @param socketSendBuffer each connection's kernel send buffer
	 */
	public record Security(@DefaultValue List<String> apiKeys, @DefaultValue Map<String, String> tenantSalts,
			@DefaultValue List<String> corsAllowedOrigins, @DefaultValue("1MB") DataSize maxRequestSize,
			@DefaultValue("false") boolean publicDocs, @DefaultValue("false") boolean controlTokensInContent,
			@DefaultValue("512") int maxConnections, @DefaultValue("128KB") DataSize socketSendBuffer) {

	}

}

package dev.griffin.serve.generation;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.griffin.serve.griffin.DensitySchedule;
import dev.griffin.serve.griffin.GriffinSettings;
import dev.griffin.serve.model.CausalLm;
import dev.griffin.serve.model.ModelOptions;
import dev.griffin.serve.hub.HubDownloader;

/**
 * Owns the loaded model: loads it in the background (the service answers health checks
 * meanwhile), runs a warm-up generation, and hands out dense or GRIFFIN variants that
 * share its weights.
 */
public final class ModelService implements AutoCloseable {

	private static final Logger logger = LoggerFactory.getLogger(ModelService.class);

	/** Where loading stands. */
	public enum State {

		LOADING, READY, FAILED

	}

	private final String source;

	private final String modelId;

	private final ModelOptions options;

	private final String prior;

	private final boolean warmUp;

	private final EngineProbe probe;

	private volatile java.util.function.Consumer<LoadedModel> loadCheck = (loaded) -> {
	};

	private final AtomicReference<State> state = new AtomicReference<>(State.LOADING);

	private final Cache<GriffinSettings, CausalLm> variants = Caffeine.newBuilder().maximumSize(32).build();

	private volatile LoadedModel model;

	private volatile String failure;

	/**
	 * @param source a local path (a .gguf file or a Hugging Face directory) or a Hub
	 * source (hf://org/name[@revision][/file.gguf]), downloaded when loading starts
	 */
	public ModelService(String source, String modelId, ModelOptions options, boolean warmUp) {
		this(source, modelId, options, null, warmUp, EngineProbe.NONE);
	}

	/**
	 * @param prior where the neuron prior is
	 * ({@link LoadedModel#load(Path, String, ModelOptions, java.util.function.IntConsumer)})
	 * @param probe called before every forward pass of a generation (fault injection)
	 */
	public ModelService(String source, String modelId, ModelOptions options, String prior, boolean warmUp,
			EngineProbe probe) {
		this.prior = prior;
		this.probe = probe;
		this.source = source;
		this.modelId = modelId;
		this.options = options;
		this.warmUp = warmUp;
	}

	/**
	 * A check of the loaded model against the configuration (the memory budget); when it
	 * throws, the model is unloaded and the service reports FAILED with its message.
	 */
	public void checkOnLoad(java.util.function.Consumer<LoadedModel> check) {
		this.loadCheck = check;
	}

	/** Loads the model on a background thread. */
	public void startLoading() {
		Thread loader = new Thread(this::loadAndWarmUp, "model-loader");
		loader.setDaemon(true);
		loader.start();
	}

	private void loadAndWarmUp() {
		long start = System.nanoTime();
		try {
			Path path = HubDownloader.isHubSource(this.source) ? HubDownloader.fromEnvironment().fetch(this.source)
					: Path.of(this.source);
			logger.info("loading model {} from {} ({}, {}, KV cache {})", this.modelId, path, this.options.dtype(),
					this.options.device(), this.options.cacheDataType());
			LoadedModel loaded = LoadedModel.load(path, this.prior, this.options, (layers) -> {
				if (layers % 10 == 0) {
					logger.info("model {}: {} layers loaded", this.modelId, layers);
				}
			});
			try {
				this.loadCheck.accept(loaded);
			}
			catch (RuntimeException ex) {
				loaded.close();
				throw ex;
			}
			this.model = loaded;
			if (this.warmUp) {
				Generator generator = new Generator(loaded.dense(), loaded.tokenizer());
				generator.generate(loaded.tokenizer().encode("Hello"), SamplingParams.greedy(4), (token, text) -> true);
				logger.info("warm-up generation done");
			}
			this.state.set(State.READY);
			logger.info("model {} ready in {} s", this.modelId,
					Duration.ofNanos(System.nanoTime() - start).toSeconds());
		}
		catch (RuntimeException | Error ex) {
			// an Error too (direct memory below the largest tensor): the service must
			// report FAILED, not stay LOADING with a dead loader thread; the log says why
			// before readiness says down
			logger.error("model {} failed to load: {}", this.modelId, ex.getMessage(), ex);
			this.failure = ex.getMessage();
			this.state.set(State.FAILED);
		}
	}

	public State state() {
		return this.state.get();
	}

	/** Why loading failed, or null. */
	public String failure() {
		return this.failure;
	}

	public String modelId() {
		return this.modelId;
	}

	public ModelOptions options() {
		return this.options;
	}

	/**
	 * The loaded model; {@link ModelNotReadyException} until loading and warm-up are
	 * done.
	 */
	public LoadedModel model() {
		LoadedModel loaded = this.model;
		if (this.state.get() != State.READY || loaded == null) {
			throw new ModelNotReadyException(this.modelId, this.state.get(), this.failure);
		}
		return loaded;
	}

	/**
	 * The model for the requested GRIFFIN settings: the dense model, or a variant that
	 * shares its weights.
	 */
	public CausalLm variant(GriffinSettings settings) {
		LoadedModel loaded = model();
		return this.variants.get(settings, (s) -> loaded.variant(s.density(), s.method()));
	}

	/** Called before every forward pass of a generation (fault injection in tests). */
	public EngineProbe probe() {
		return this.probe;
	}

	/**
	 * The prompt-cache key of a prompt under these settings.
	 * @param tenant whose partition of the cache (the API key), null for the shared one
	 */
	public PromptCache.Key cacheKey(GriffinSettings settings, Long selectionSeed, String tenantSalt, String tenant,
			int[] tokens) {
		DensitySchedule schedule = settings.isDense() ? null : model().schedule(settings.density(), settings.method());
		String model = this.modelId + "@" + this.source;
		String dtype = this.options.dtype().name();
		return new PromptCache.Key(tenant,
				PromptCache.hash(model, dtype, schedule, settings.isDense() ? null : settings.method(),
						settings.isRandomized() ? selectionSeed : null, tenantSalt, tokens),
				PromptCache.prefixBase(model, dtype, tenantSalt));
	}

	public List<String> modelIds() {
		return List.of(this.modelId);
	}

	@Override
	public void close() {
		LoadedModel loaded = this.model;
		if (loaded != null) {
			loaded.close();
		}
	}

}

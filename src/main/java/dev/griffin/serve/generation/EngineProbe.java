package dev.griffin.serve.generation;

/**
 * Called before every forward pass of a generation; a probe that throws makes that pass
 * fail as the engine would. The service runs none: it is the fault-injection point for
 * tests of how failures are counted and reported.
 */
@FunctionalInterface
public interface EngineProbe {

	EngineProbe NONE = (phase) -> {
	};

	/**
	 * @param phase "allocate", "prompt" (prefill or a prompt-cache restore), "prefill",
	 * "sample" or "decode"
	 */
	void beforeForward(String phase);

}

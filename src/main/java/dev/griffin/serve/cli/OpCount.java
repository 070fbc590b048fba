package dev.griffin.serve.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import ai.djl.pytorch.jni.JniUtils;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import dev.griffin.serve.generation.InferenceSession;
import dev.griffin.serve.griffin.GriffinFeedForward;
import dev.griffin.serve.model.CausalLm;

/**
 * The libtorch operations one decode step calls, counted with libtorch's profiler: each
 * top-level operation on a thread (one the caller asked for, not one it runs inside
 * another) is one call through the engine, with its fixed cost.
 */
final class OpCount {

	private OpCount() {
	}

	/**
	 * Top-level libtorch operations of one decode step after a short prompt, once any
	 * selection that waits on the first generated tokens ({@code delayed},
	 * {@code dense_start}) has run.
	 */
	static int decodeStep(CausalLm model) {
		Path trace;
		try {
			trace = Files.createTempFile("griffin-decode-trace", ".json");
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
		int warm = GriffinFeedForward.DELAY_TOKENS + 1;
		try (InferenceSession session = new InferenceSession(model, 8 + warm + 1)) {
			session.prefill(new int[] { 1, 2, 3, 4, 5, 6, 7, 8 }, 8);
			session.finishPrompt();
			for (int i = 0; i < warm; i++) {
				session.decode(9 + i);
			}
			JniUtils.startProfile(false, false, false);
			try {
				session.decode(9 + warm);
			}
			finally {
				JniUtils.stopProfile(trace.toString());
			}
			return topLevel(new ObjectMapper().readTree(trace.toFile()));
		}
		catch (IOException ex) {
			throw new UncheckedIOException(ex);
		}
		finally {
			trace.toFile().delete();
		}
	}

	/** Complete events not nested in another on the same thread. */
	static int topLevel(JsonNode trace) {
		JsonNode events = trace.isArray() ? trace : trace.get("traceEvents");
		Map<String, List<double[]>> byThread = new HashMap<>();
		for (JsonNode event : events) {
			if ("X".equals(event.path("ph").asText())) {
				byThread.computeIfAbsent(event.path("tid").asText(), (tid) -> new ArrayList<>())
					.add(new double[] { event.get("ts").asDouble(), event.get("dur").asDouble() });
			}
		}
		int count = 0;
		for (List<double[]> spans : byThread.values()) {
			// by start, longest first: a span inside the last open one is nested
			spans.sort(Comparator.<double[]>comparingDouble((s) -> s[0]).thenComparingDouble((s) -> -s[1]));
			double openEnd = Double.NEGATIVE_INFINITY;
			for (double[] span : spans) {
				if (span[0] >= openEnd) {
					count++;
					openEnd = span[0] + span[1];
				}
			}
		}
		return count;
	}

}

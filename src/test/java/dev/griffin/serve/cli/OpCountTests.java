package dev.griffin.serve.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class OpCountTests {

	@Test
	void countsOnlyOperationsNotNestedInAnotherOnTheSameThread() throws Exception {
		String trace = """
				{"traceEvents": [
				  {"name": "aten::linear", "ph": "X", "ts": 0, "dur": 10, "tid": 1},
				  {"name": "aten::t", "ph": "X", "ts": 1, "dur": 2, "tid": 1},
				  {"name": "aten::addmm", "ph": "X", "ts": 4, "dur": 5, "tid": 1},
				  {"name": "aten::add", "ph": "X", "ts": 12, "dur": 3, "tid": 1},
				  {"name": "aten::mm", "ph": "X", "ts": 2, "dur": 6, "tid": 2},
				  {"name": "[memory]", "ph": "i", "ts": 5, "tid": 1}
				]}""";
		assertThat(OpCount.topLevel(new ObjectMapper().readTree(trace))).isEqualTo(3);
	}

}

package dev.griffin.serve.weights;

import java.util.Iterator;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.Fixtures;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every supported GGML type dequantises bit for bit as the {@code gguf} Python package
 * does (fixtures/gguf-dequant, written by tools/reference with gguf's own writer and
 * dequantiser).
 */
class GgufDequantizationTests {

	@Test
	void everySupportedTypeMatchesTheGgufPackage() {
		JsonNode expected = Fixtures.json("gguf-dequant/expected.json");
		try (GgufFile file = GgufFile.open(Fixtures.path("gguf-dequant/types.gguf"))) {
			assertThat(file.version()).isEqualTo(3);
			int checked = 0;
			for (Iterator<Map.Entry<String, JsonNode>> it = expected.fields(); it.hasNext();) {
				Map.Entry<String, JsonNode> entry = it.next();
				GgufFile.TensorInfo info = file.tensors().get(entry.getKey());
				assertThat(info.type().name()).isEqualTo(entry.getValue().get("type").asText());
				assertThat(info.shape()).containsExactly(4, 512);
				float[] values = file.dequantize(info);
				JsonNode want = entry.getValue().get("values");
				assertThat(values).hasSize(want.size());
				for (int i = 0; i < values.length; i++) {
					assertThat(values[i]).as("%s[%d]", entry.getKey(), i).isEqualTo((float) want.get(i).asDouble());
				}
				checked++;
			}
			assertThat(checked).isEqualTo(10);
		}
		catch (java.io.IOException ex) {
			throw new java.io.UncheckedIOException(ex);
		}
	}

	@Test
	void halfPrecisionConversionCoversSubnormalsAndSpecials() {
		assertThat(Float16.toFloat((short) 0x3C00)).isEqualTo(1.0f);
		assertThat(Float16.toFloat((short) 0xC000)).isEqualTo(-2.0f);
		assertThat(Float16.toFloat((short) 0x0001)).isEqualTo(0x1p-24f);
		assertThat(Float16.toFloat((short) 0x7BFF)).isEqualTo(65504f);
		assertThat(Float16.toFloat((short) 0x7C00)).isEqualTo(Float.POSITIVE_INFINITY);
		assertThat(Float16.toFloat((short) 0x7E00)).isNaN();
		assertThat(Float16.bfloat16ToFloat((short) 0x3F80)).isEqualTo(1.0f);
	}

}

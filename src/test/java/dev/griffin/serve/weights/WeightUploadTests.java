package dev.griffin.serve.weights;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Tensors staged a block of rows at a time arrive whole, in order and in the model's
 * precision, whatever the block size.
 */
class WeightUploadTests {

	private static FloatTensor counting(int rows, int columns, float start) {
		float[] data = new float[rows * columns];
		for (int i = 0; i < data.length; i++) {
			data[i] = start + i;
		}
		return new FloatTensor(data, new long[] { rows, columns });
	}

	@ParameterizedTest
	@CsvSource({ "FLOAT32, 1", "FLOAT32, 8", "FLOAT32, 7", "FLOAT32, 1000", "FLOAT16, 8", "FLOAT16, 1000" })
	void stackedPartsArriveWholeAndInOrder(DataType type, int block) {
		FloatTensor first = counting(5, 4, 0);
		FloatTensor second = counting(3, 4, 100);
		try (NDManager manager = NDManager.newBaseManager("PyTorch");
				WeightUpload upload = new WeightUpload(manager, type, block)) {
			NDArray stacked = upload.stacked(TensorRows.of(first), TensorRows.of(second).scaled(0.5f));
			assertThat(stacked.getShape().getShape()).containsExactly(8, 4);
			assertThat(stacked.getDataType()).isEqualTo(type);
			float[] values = stacked.toType(DataType.FLOAT32, false).toFloatArray();
			for (int i = 0; i < 20; i++) {
				assertThat(values[i]).as("first part, value %d", i).isEqualTo(i);
			}
			for (int i = 0; i < 12; i++) {
				assertThat(values[20 + i]).as("second part, value %d", i).isEqualTo((100 + i) * 0.5f);
			}
			NDArray vector = upload.stacked(TensorRows.of(new FloatTensor(new float[] { 1, 2, 3 }, new long[] { 3 })));
			assertThat(vector.getShape().getShape()).containsExactly(3);
			assertThat(vector.toType(DataType.FLOAT32, false).toFloatArray()).containsExactly(1, 2, 3);
			assertThat(upload.bytes()).isEqualTo(35L * type.getNumOfBytes());
		}
	}

	@ParameterizedTest
	@CsvSource({ "1", "3", "8", "1000" })
	void reorderedRowsArriveInTheirNewOrderWhateverTheBlock(int block) {
		FloatTensor tensor = counting(6, 3, 0);
		int[] source = { 4, 0, 5, 1, 3, 2 };
		try (NDManager manager = NDManager.newBaseManager("PyTorch");
				WeightUpload upload = new WeightUpload(manager, DataType.FLOAT32, block)) {
			float[] values = upload.stacked(TensorRows.of(tensor).rowsFrom(row -> source[row])).toFloatArray();
			for (int row = 0; row < 6; row++) {
				for (int column = 0; column < 3; column++) {
					assertThat(values[row * 3 + column]).as("row %d, column %d", row, column)
						.isEqualTo(source[row] * 3 + column);
				}
			}
		}
	}

	/**
	 * llama.cpp writes each head's rows of q and k as (j, half) pairs: its row 2j + t is
	 * the Hugging Face row t * half + j.
	 */
	@ParameterizedTest
	@CsvSource({ "64, 9", "128, 2", "2, 3" })
	void interleavedRowsUndoLlamaCppsPermutation(int headSize, int heads) {
		int half = headSize / 2;
		int[] expected = new int[headSize * heads];
		for (int h = 0; h < heads; h++) {
			for (int j = 0; j < half; j++) {
				for (int t = 0; t < 2; t++) {
					expected[h * headSize + t * half + j] = h * headSize + 2 * j + t;
				}
			}
		}
		for (int row = 0; row < expected.length; row++) {
			assertThat(GgufCheckpoint.interleavedRow(row, headSize)).as("row %d", row).isEqualTo(expected[row]);
		}
	}

}

package dev.griffin.serve.weights;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * GGML tensor types and their dequantisation to float32. Block layouts follow ggml's
 * {@code ggml-common.h}; the arithmetic is ordered as in the {@code gguf} Python package
 * so that results agree bit for bit.
 */
public enum GgmlType {

	F32(0, 1, 4), F16(1, 1, 2), Q4_0(2, 32, 2 + 16), Q4_1(3, 32, 2 + 2 + 16), Q5_0(6, 32, 2 + 4 + 16),
	Q5_1(7, 32, 2 + 2 + 4 + 16), Q8_0(8, 32, 2 + 32), Q8_1(9, 32, 4 + 4 + 32), Q2_K(10, 256, 84), Q3_K(11, 256, 110),
	Q4_K(12, 256, 2 + 2 + 12 + 128), Q5_K(13, 256, 176), Q6_K(14, 256, 128 + 64 + 16 + 2), Q8_K(15, 256, 292),
	BF16(30, 1, 2);

	/** Types this reader can dequantise; others are named in the load error. */
	private static final java.util.EnumSet<GgmlType> SUPPORTED = java.util.EnumSet.of(F32, F16, BF16, Q4_0, Q4_1, Q5_0,
			Q5_1, Q8_0, Q4_K, Q6_K);

	private final int id;

	private final int blockSize;

	private final int bytesPerBlock;

	GgmlType(int id, int blockSize, int bytesPerBlock) {
		this.id = id;
		this.blockSize = blockSize;
		this.bytesPerBlock = bytesPerBlock;
	}

	public int id() {
		return this.id;
	}

	public int blockSize() {
		return this.blockSize;
	}

	public boolean isSupported() {
		return SUPPORTED.contains(this);
	}

	/** Returns the type with this GGML id, or {@code null} when the id is unknown. */
	public static GgmlType byId(int id) {
		for (GgmlType type : values()) {
			if (type.id == id) {
				return type;
			}
		}
		return null;
	}

	public long byteSize(long elements) {
		if (elements % this.blockSize != 0) {
			throw new IllegalArgumentException(
					"%d elements is not a multiple of the %s block size %d".formatted(elements, this, this.blockSize));
		}
		return elements / this.blockSize * this.bytesPerBlock;
	}

	/**
	 * Dequantises {@code count} elements from {@code data} (positioned at the tensor's
	 * first byte) into {@code out[offset..offset+count)}.
	 */
	public void dequantize(ByteBuffer data, float[] out, int offset, int count) {
		ByteBuffer in = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
		int blocks = count / this.blockSize;
		switch (this) {
			case F32 -> in.asFloatBuffer().get(out, offset, count);
			case F16 -> {
				for (int i = 0; i < count; i++) {
					out[offset + i] = Float16.toFloat(in.getShort());
				}
			}
			case BF16 -> {
				for (int i = 0; i < count; i++) {
					out[offset + i] = Float16.bfloat16ToFloat(in.getShort());
				}
			}
			case Q4_0 -> {
				for (int b = 0, o = offset; b < blocks; b++, o += 32) {
					float d = Float16.toFloat(in.getShort());
					for (int j = 0; j < 16; j++) {
						int q = in.get() & 0xFF;
						out[o + j] = d * (float) ((q & 0x0F) - 8);
						out[o + j + 16] = d * (float) ((q >>> 4) - 8);
					}
				}
			}
			case Q4_1 -> {
				for (int b = 0, o = offset; b < blocks; b++, o += 32) {
					float d = Float16.toFloat(in.getShort());
					float m = Float16.toFloat(in.getShort());
					for (int j = 0; j < 16; j++) {
						int q = in.get() & 0xFF;
						out[o + j] = d * (q & 0x0F) + m;
						out[o + j + 16] = d * (q >>> 4) + m;
					}
				}
			}
			case Q5_0 -> dequantizeQ5(in, out, offset, blocks, false);
			case Q5_1 -> dequantizeQ5(in, out, offset, blocks, true);
			case Q8_0 -> {
				for (int b = 0, o = offset; b < blocks; b++, o += 32) {
					float d = Float16.toFloat(in.getShort());
					for (int j = 0; j < 32; j++) {
						out[o + j] = d * in.get();
					}
				}
			}
			case Q4_K -> dequantizeQ4K(in, out, offset, blocks);
			case Q6_K -> dequantizeQ6K(in, out, offset, blocks);
			default -> throw new UnsupportedOperationException("dequantisation of " + this + " is not supported");
		}
	}

	/**
	 * Q5_0 and Q5_1: blocks of 32 five-bit values, the low four bits packed two to a byte
	 * as in Q4_0 and the fifth bits in one little-endian 32-bit word; Q5_0 centres them
	 * (value - 16) times a scale, Q5_1 adds a minimum instead.
	 */
	private static void dequantizeQ5(ByteBuffer in, float[] out, int offset, int blocks, boolean withMinimum) {
		for (int b = 0, o = offset; b < blocks; b++, o += 32) {
			float d = Float16.toFloat(in.getShort());
			float m = withMinimum ? Float16.toFloat(in.getShort()) : 0f;
			int high = in.getInt();
			int centre = withMinimum ? 0 : 16;
			for (int j = 0; j < 16; j++) {
				int q = in.get() & 0xFF;
				int low = (q & 0x0F) | (((high >>> j) & 1) << 4);
				int up = (q >>> 4) | (((high >>> (j + 16)) & 1) << 4);
				out[o + j] = d * (float) (low - centre) + m;
				out[o + j + 16] = d * (float) (up - centre) + m;
			}
		}
	}

	private static void dequantizeQ4K(ByteBuffer in, float[] out, int offset, int blocks) {
		byte[] scales = new byte[12];
		byte[] qs = new byte[128];
		for (int b = 0, o = offset; b < blocks; b++, o += 256) {
			float d = Float16.toFloat(in.getShort());
			float dmin = Float16.toFloat(in.getShort());
			in.get(scales);
			in.get(qs);
			for (int sub = 0; sub < 8; sub++) {
				int sc;
				int m;
				if (sub < 4) {
					sc = scales[sub] & 63;
					m = scales[sub + 4] & 63;
				}
				else {
					sc = (scales[sub + 4] & 0x0F) | (((scales[sub - 4] & 0xFF) >>> 6) << 4);
					m = ((scales[sub + 4] & 0xFF) >>> 4) | (((scales[sub] & 0xFF) >>> 6) << 4);
				}
				float dl = d * sc;
				float ml = dmin * m;
				int base = (sub / 2) * 32;
				int shift = (sub % 2) * 4;
				for (int l = 0; l < 32; l++) {
					int q = ((qs[base + l] & 0xFF) >>> shift) & 0x0F;
					out[o + sub * 32 + l] = dl * q - ml;
				}
			}
		}
	}

	private static void dequantizeQ6K(ByteBuffer in, float[] out, int offset, int blocks) {
		byte[] ql = new byte[128];
		byte[] qh = new byte[64];
		byte[] scales = new byte[16];
		for (int b = 0, o = offset; b < blocks; b++, o += 256) {
			in.get(ql);
			in.get(qh);
			in.get(scales);
			float d = Float16.toFloat(in.getShort());
			for (int half = 0; half < 2; half++) {
				for (int group = 0; group < 4; group++) {
					for (int l = 0; l < 32; l++) {
						int low = ql[64 * half + 32 * (group % 2) + l] & 0xFF;
						low = (group < 2) ? (low & 0x0F) : (low >>> 4);
						int high = ((qh[32 * half + l] & 0xFF) >>> (2 * group)) & 0x03;
						int q = (low | (high << 4)) - 32;
						int index = 128 * half + 32 * group + l;
						float scale = d * scales[index / 16];
						out[o + index] = scale * q;
					}
				}
			}
		}
	}

}

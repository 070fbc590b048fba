package dev.griffin.serve.weights;

/**
 * IEEE 754 half precision and bfloat16 to float conversion. Java 17 has no
 * {@code Float.float16ToFloat}; a 64K-entry table makes the conversion exact and cheap.
 */
public final class Float16 {

	private static final float[] HALF_TO_FLOAT = new float[1 << 16];

	static {
		for (int h = 0; h < HALF_TO_FLOAT.length; h++) {
			HALF_TO_FLOAT[h] = convert((short) h);
		}
	}

	private Float16() {
	}

	public static float toFloat(short half) {
		return HALF_TO_FLOAT[half & 0xFFFF];
	}

	public static float bfloat16ToFloat(short bf16) {
		return Float.intBitsToFloat((bf16 & 0xFFFF) << 16);
	}

	private static float convert(short half) {
		int bits = half & 0xFFFF;
		int sign = (bits >>> 15) << 31;
		int exponent = (bits >>> 10) & 0x1F;
		int mantissa = bits & 0x3FF;
		if (exponent == 0x1F) {
			return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
		}
		if (exponent == 0) {
			if (mantissa == 0) {
				return Float.intBitsToFloat(sign);
			}
			// subnormal: mantissa * 2^-24
			float value = mantissa * 0x1p-24f;
			return sign == 0 ? value : -value;
		}
		return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
	}

}

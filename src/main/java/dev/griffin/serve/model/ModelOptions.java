package dev.griffin.serve.model;

import java.util.Locale;

import ai.djl.Device;
import ai.djl.ndarray.types.DataType;

/**
 * Where and in what precision a model runs, and how its products run.
 *
 * @param dtype float32 or float16 (DJL's PyTorch engine cannot convert to bfloat16)
 * @param device "cpu", "gpu" or "gpu:N"
 * @param decodeKernel the decode form, or null for the fastest measured at load
 * @param prefillKernel the prefill form, or null for the fastest measured at load
 * @param packWeights whether weights on the CPU get oneDNN-packed copies
 * ({@link PackedWeights}) where a form that reads them can be chosen
 * ({@link #packsAtLoad()}): faster oneDNN products for as much memory again
 * @param kvCache the KV cache's precision on the CPU, or null for the weights' (see
 * {@link #cacheDataType()}); on a GPU null or the model's dtype
 */
public record ModelOptions(Precision dtype, String device, Kernels.Decode decodeKernel, Kernels.Prefill prefillKernel,
		boolean packWeights, Precision kvCache) {

	/** Kernels measured at load, weights packed where that applies. */
	public ModelOptions(Precision dtype, String device) {
		this(dtype, device, null, null, true, null);
	}

	/** Weights packed where that applies. */
	public ModelOptions(Precision dtype, String device, Kernels.Decode decodeKernel, Kernels.Prefill prefillKernel) {
		this(dtype, device, decodeKernel, prefillKernel, true, null);
	}

	/** These options with weight packing on or off. */
	public ModelOptions withPackWeights(boolean pack) {
		return new ModelOptions(this.dtype, this.device, this.decodeKernel, this.prefillKernel, pack, this.kvCache);
	}

	/**
	 * These options with the KV cache in {@code precision}, or null for the weights'
	 * precision.
	 */
	public ModelOptions withKvCache(Precision precision) {
		return new ModelOptions(this.dtype, this.device, this.decodeKernel, this.prefillKernel, this.packWeights,
				precision);
	}

	/**
	 * The KV cache precision a setting names: "auto" (or blank: null, the weights'),
	 * float32 or float16.
	 */
	public static Precision kvCache(String name) {
		if (auto(name)) {
			return null;
		}
		try {
			return Precision.parse(name);
		}
		catch (IllegalArgumentException ex) {
			throw new IllegalArgumentException(
					"KV cache dtype '%s' is not one of auto, float32, float16".formatted(name.trim()), ex);
		}
	}

	/**
	 * Whether the model gets packed weight copies: asked for, on the CPU. float32 copies
	 * serve the oneDNN forms and batched passes; float16 copies the
	 * {@link Kernels.Decode#LAYER} form's one-row products.
	 */
	public boolean packsWeights() {
		return this.packWeights && this.device.equals("cpu");
	}

	/**
	 * Whether a load makes the packed copies: {@link #packsWeights()}, and a plan that
	 * reads them can come out of it. That is when a form that reads them is named (a
	 * float32 decode form other than {@link Kernels.Decode#NATIVE} or the
	 * {@link Kernels.Prefill#ONEDNN} prefill form, the float16
	 * {@link Kernels.Decode#LAYER} form), or when the native kernels cannot run here, so
	 * that calibration weighs oneDNN's forms. Where they run, calibration chose the
	 * native forms on every CPU measured, and copying every matrix only for calibration
	 * to time oneDNN's forms took a load's memory to about twice its weights before the
	 * copies were freed again (docs/results.md, "A load without copies nothing reads").
	 */
	public boolean packsAtLoad() {
		if (!packsWeights()) {
			return false;
		}
		if (NativeKernels.unavailable() != null) {
			return true;
		}
		Kernels named = new Kernels((this.decodeKernel != null) ? this.decodeKernel : Kernels.Decode.NATIVE,
				(this.prefillKernel != null) ? this.prefillKernel : Kernels.Prefill.NATIVE, 1);
		return named.readsPacked(this.dtype.dataType());
	}

	/**
	 * @param decodeKernel "auto" or a {@link Kernels.Decode} form
	 * @param prefillKernel "auto" or a {@link Kernels.Prefill} form
	 */
	public static ModelOptions of(String dtype, String device, String decodeKernel, String prefillKernel) {
		return new ModelOptions(Precision.parse(dtype), device,
				auto(decodeKernel) ? null : Kernels.Decode.parse(decodeKernel),
				auto(prefillKernel) ? null : Kernels.Prefill.parse(prefillKernel));
	}

	/**
	 * Whether oneDNN's float32 product (the onednn forms, and every batched decode pass)
	 * applies: float32 weights on the CPU.
	 */
	public boolean oneDnnApplies() {
		return this.device.equals("cpu") && this.dtype == Precision.FLOAT32;
	}

	private static boolean auto(String kernel) {
		return kernel == null || kernel.isBlank() || kernel.trim().equalsIgnoreCase("auto");
	}

	/** Compute precisions. */
	public enum Precision {

		FLOAT32(DataType.FLOAT32), FLOAT16(DataType.FLOAT16);

		private final DataType dataType;

		Precision(DataType dataType) {
			this.dataType = dataType;
		}

		public DataType dataType() {
			return this.dataType;
		}

		public static Precision parse(String name) {
			return switch (name.toLowerCase(Locale.ROOT)) {
				case "float32", "fp32", "f32" -> FLOAT32;
				case "float16", "fp16", "f16", "half" -> FLOAT16;
				case "bfloat16", "bf16" -> throw new IllegalArgumentException(
						"dtype bfloat16 is not supported by this engine build; use float32 or float16");
				default -> throw new IllegalArgumentException("dtype '" + name + "' is not one of float32, float16");
			};
		}

		public int bytes() {
			return this.dataType.getNumOfBytes();
		}

	}

	public static final ModelOptions CPU_FLOAT32 = new ModelOptions(Precision.FLOAT32, "cpu");

	public ModelOptions {
		if (dtype == null) {
			throw new IllegalArgumentException("dtype is required");
		}
		device = (device == null || device.isBlank()) ? "cpu" : device.trim().toLowerCase(Locale.ROOT);
		if (!device.matches("cpu|gpu(:\\d+)?|cuda(:\\d+)?")) {
			throw new IllegalArgumentException("device '" + device + "' is not one of cpu, gpu, gpu:N");
		}
		if (kvCache != null && kvCache != dtype && !device.equals("cpu")) {
			throw new IllegalArgumentException("on a GPU the KV cache is in the model's dtype (%s), not %s"
				.formatted(dtype.name().toLowerCase(Locale.ROOT), kvCache.name().toLowerCase(Locale.ROOT)));
		}
	}

	public Device djlDevice() {
		if (this.device.equals("cpu")) {
			return Device.cpu();
		}
		int colon = this.device.indexOf(':');
		return Device.gpu((colon < 0) ? 0 : Integer.parseInt(this.device.substring(colon + 1)));
	}

	/**
	 * The precision of attention's own arithmetic (rotary embedding, scores, softmax,
	 * weighted values). The model's dtype, except half precision on the CPU: libtorch's
	 * CPU batched matrix product in float16 is 2-3x slower than in float32 and needs a
	 * contiguous copy of the transposed keys, so there attention runs in float32 between
	 * the float16 projections.
	 */
	public DataType attentionDataType() {
		return this.device.equals("cpu") ? DataType.FLOAT32 : this.dtype.dataType();
	}

	/**
	 * The precision the KV cache stores keys and values in: on a GPU the model's dtype;
	 * on the CPU the configured one, else the weights' (a float16 model's cache holds
	 * half the bytes of a float32 one, and decode reads it every step). Attention widens
	 * a float16 cache to {@link #attentionDataType()} as it reads it.
	 */
	public DataType cacheDataType() {
		return (this.kvCache == null || !this.device.equals("cpu")) ? this.dtype.dataType() : this.kvCache.dataType();
	}

}

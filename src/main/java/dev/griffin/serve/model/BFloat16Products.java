package dev.griffin.serve.model;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import ai.djl.pytorch.jni.JniUtils;

/**
 * Matrix products in bfloat16 for the {@link Kernels.Prefill#BFLOAT16} form. DJL's JNI
 * cannot create or convert to a bfloat16 tensor, so a small TorchScript module does the
 * rounding and the product: it takes the activations and weights in their own types
 * (float32 or float16), multiplies them rounded to bfloat16 (libtorch's oneDNN path,
 * which uses AVX512-BF16 where the CPU has it) and returns the activations' type, so no
 * bfloat16 tensor reaches Java. The module holds no weights;
 * {@code tools/torchscript/make_bfloat16.py} writes it.
 */
final class BFloat16Products {

	private static final String RESOURCE = "bfloat16-products.pt";

	private final PtSymbolBlock module;

	private BFloat16Products(PtSymbolBlock module) {
		this.module = module;
	}

	/** The module, loaded once per process on first use and kept for its lifetime. */
	private static final class Loaded {

		static final BFloat16Products INSTANCE = load();

		private static BFloat16Products load() {
			// a manager of its own that is never closed: the module lives as long as the
			// engine
			PtNDManager manager = (PtNDManager) Engine.getEngine("PyTorch").newBaseManager();
			try (InputStream in = BFloat16Products.class.getResourceAsStream(RESOURCE)) {
				if (in == null) {
					throw new IllegalStateException("the bfloat16 products module " + RESOURCE + " is missing");
				}
				return new BFloat16Products(JniUtils.loadModule(manager, in, true, false));
			}
			catch (IOException ex) {
				throw new UncheckedIOException("cannot read the bfloat16 products module", ex);
			}
		}

	}

	static BFloat16Products get() {
		return Loaded.INSTANCE;
	}

	/**
	 * x W^T + b for x [T, in] and W [out, in] (b may be null), multiplied in bfloat16:
	 * [T, out] in x's type.
	 */
	NDArray linear(NDArray x, NDArray weight, NDArray bias) {
		PtNDManager manager = (PtNDManager) x.getManager();
		IValue[] inputs = (bias == null) ? new IValue[] { IValue.from((PtNDArray) x), IValue.from((PtNDArray) weight) }
				: new IValue[] { IValue.from((PtNDArray) x), IValue.from((PtNDArray) weight),
						IValue.from((PtNDArray) bias) };
		try (IValue result = IValueUtils.runMethod(this.module, (bias == null) ? "linear" : "linear_bias", inputs)) {
			return result.toTensor(manager);
		}
		finally {
			for (IValue input : inputs) {
				input.close();
			}
		}
	}

}

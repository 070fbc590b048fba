package dev.griffin.serve.model;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import ai.djl.pytorch.jni.JniUtils;

/**
 * Matrix products that DJL cannot express, run by small TorchScript modules that hold no
 * weights: each has methods {@code linear(x, W)} and {@code linear_bias(x, W, b)} and
 * returns x's type.
 * <ul>
 * <li>{@link #bfloat16()}, for the {@link Kernels.Prefill#BFLOAT16} form: DJL's JNI
 * cannot create or convert to a bfloat16 tensor, so the module rounds float32 or float16
 * activations and weights to bfloat16, multiplies them (libtorch's oneDNN path, which
 * uses AVX512-BF16 where the CPU has it) and converts back, and no bfloat16 tensor
 * reaches Java ({@code tools/torchscript/make_bfloat16.py}).</li>
 * <li>{@link #oneDnn()}, for the {@link Kernels.Decode#ONEDNN} and
 * {@link Kernels.Prefill#ONEDNN} forms: oneDNN's float32 inner product on plain tensors,
 * which libtorch carries but DJL cannot call, and the packing of weights into its blocked
 * layout ({@code tools/torchscript/make_onednn.py}).</li>
 * </ul>
 * Beside the products, {@link #indexSelect} runs libtorch's index_select for GRIFFIN's
 * expert gathering ({@code tools/torchscript/make_index_select.py}), and {@link #run}
 * calls a method of any of these weightless modules ({@link BatchAttention}'s too).
 */
final class ScriptedProducts {

	private final PtSymbolBlock module;

	private ScriptedProducts(PtSymbolBlock module) {
		this.module = module;
	}

	/** The bfloat16 module, loaded once per process on first use. */
	private static final class BFloat16 {

		static final ScriptedProducts INSTANCE = load("bfloat16-products.pt");

	}

	/** The oneDNN module, loaded once per process on first use. */
	private static final class OneDnn {

		static final ScriptedProducts INSTANCE = load("onednn-products.pt");

	}

	/** The index_select module, loaded once per process on first use. */
	private static final class IndexSelect {

		static final PtSymbolBlock MODULE = module("index-select.pt");

	}

	/**
	 * libtorch's index_select, which DJL cannot call
	 * ({@code tools/torchscript/make_index_select.py}): the entries of {@code array} at
	 * {@code index} (int64) along {@code axis}, contiguous, in the array's manager.
	 */
	static NDArray indexSelect(NDArray array, int axis, NDArray index) {
		return run(IndexSelect.MODULE, "select", array.getManager(), IValue.from((PtNDArray) array), IValue.from(axis),
				IValue.from((PtNDArray) index));
	}

	static ScriptedProducts bfloat16() {
		return BFloat16.INSTANCE;
	}

	static ScriptedProducts oneDnn() {
		return OneDnn.INSTANCE;
	}

	private static ScriptedProducts load(String resource) {
		return new ScriptedProducts(module(resource));
	}

	/**
	 * Loads a weightless TorchScript module shipped next to this class, in a manager of
	 * its own that is never closed: the module lives as long as the engine.
	 */
	static PtSymbolBlock module(String resource) {
		PtNDManager manager = (PtNDManager) Engine.getEngine("PyTorch").newBaseManager();
		try (InputStream in = ScriptedProducts.class.getResourceAsStream(resource)) {
			if (in == null) {
				throw new IllegalStateException("the TorchScript module " + resource + " is missing");
			}
			return JniUtils.loadModule(manager, in, true, false);
		}
		catch (IOException ex) {
			throw new UncheckedIOException("cannot read the TorchScript module " + resource, ex);
		}
	}

	/**
	 * W [out, in] (float32) in oneDNN's blocked layout for products of about {@code rows}
	 * rows, owned by W's manager: an opaque tensor that only this module's {@code linear}
	 * and {@code linear_bias} may read ({@link PackedWeights}). oneDNN's module only.
	 */
	NDArray pack(NDArray weight, int rows) {
		return run(this.module, "pack", weight.getManager(), IValue.from((PtNDArray) weight), IValue.from(rows));
	}

	/**
	 * x W^T + b for x [T, in] and W [out, in] (b may be null): [T, out] in x's type. W
	 * may be a packed copy ({@link #pack}) for oneDNN's module.
	 */
	NDArray linear(NDArray x, NDArray weight, NDArray bias) {
		IValue[] inputs = (bias == null) ? new IValue[] { IValue.from((PtNDArray) x), IValue.from((PtNDArray) weight) }
				: new IValue[] { IValue.from((PtNDArray) x), IValue.from((PtNDArray) weight),
						IValue.from((PtNDArray) bias) };
		return run(this.module, (bias == null) ? "linear" : "linear_bias", x.getManager(), inputs);
	}

	/**
	 * Runs a method of a weightless module that returns one tensor, owned by
	 * {@code manager}; the inputs are freed.
	 */
	static NDArray run(PtSymbolBlock module, String method, NDManager manager, IValue... inputs) {
		try (IValue result = IValueUtils.runMethod(module, method, inputs)) {
			return result.toTensor((PtNDManager) manager);
		}
		finally {
			for (IValue input : inputs) {
				input.close();
			}
		}
	}

}

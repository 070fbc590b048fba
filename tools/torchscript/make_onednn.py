"""Writes the TorchScript module behind the oneDNN product forms (Kernels.Decode.ONEDNN and
Kernels.Prefill.ONEDNN).

    python tools/torchscript/make_onednn.py            # needs torch==2.7.1 (tools/reference/requirements.txt)

libtorch multiplies float32 matrices with MKL, whose matrix-vector and few-row products run far
below the memory bandwidth on some x86 CPUs (MKL takes a generic code path on CPUs that are not
Intel's). libtorch also carries oneDNN, whose float32 inner product reaches that bandwidth for one
row and a few rows, but DJL has no way to call it: this module calls
`torch.ops.mkldnn._linear_pointwise` on plain float32 tensors (no packed weights, no conversion)
and returns float32. Given a plain float16 matrix on a CPU without AVX512-FP16, oneDNN's product
was 6 to 60 times slower than libtorch's, so the engine offers these forms for float32 weights only; pack
also takes float16 weights, whose packed copies linear multiplies fast (the layer decode form
passes them to make_batch_layer's step_one, and the engine's one-row head product to linear).

The module holds no weights: the file is a few kilobytes and is committed at
src/main/resources/dev/griffin/serve/model/onednn-products.pt. torch must match the libtorch that
DJL's pytorch-native-cpu bundles (2.7.1) for the engine to load it.
"""

import torch

import scripted


class OneDnnProducts(torch.nn.Module):

    @torch.jit.export
    def linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x [T, in] @ weight [out, in]^T by oneDNN, float32."""
        return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")

    @torch.jit.export
    def linear_bias(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """As linear, plus a bias."""
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    @torch.jit.export
    def pack(self, weight: torch.Tensor, rows: int) -> torch.Tensor:
        """weight [out, in] float32 reordered into oneDNN's blocked layout for products of
        about `rows` rows (an opaque tensor that only linear and linear_bias read)."""
        return torch.ops.mkldnn._reorder_linear_weight(weight, rows)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self.linear(x, weight)


def main():
    scripted.write(OneDnnProducts(), "onednn-products.pt")


if __name__ == "__main__":
    main()

"""Writes the TorchScript module behind the bfloat16 prefill form (Kernels.Prefill.BFLOAT16).

    python tools/torchscript/make_bfloat16.py          # needs torch==2.7.1 (tools/reference/requirements.txt)

DJL 0.36's JNI cannot create or convert to a bfloat16 tensor (its dtype table stops before
bfloat16), so the conversion happens inside this module: the engine passes float32 or float16
activations and weights, the module rounds both to bfloat16, multiplies them with libtorch's
bfloat16 matrix product (oneDNN with AVX512-BF16 where the CPU has it) and hands back the
activations' type. No bfloat16 tensor ever reaches Java. Weights are converted a block of rows at
a time so that no conversion buffer is larger than BLOCK_ELEMENTS (malloc serves blocks that size
from its heap instead of mapping and faulting in fresh pages on every call).

The module holds no weights: the file is a few kilobytes and is committed at
src/main/resources/dev/griffin/serve/model/bfloat16-products.pt. torch must match the libtorch
that DJL's pytorch-native-cpu bundles (2.7.1) for the engine to load it.
"""
from typing import List

import torch
import torch.nn.functional as F

import scripted


BLOCK_ELEMENTS = 8 * 1024 * 1024


class BFloat16Products(torch.nn.Module):

    def __init__(self, block_elements: int):
        super().__init__()
        self.block_elements = block_elements

    @torch.jit.export
    def linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x [T, in] @ weight [out, in]^T in bfloat16, returned in x's type."""
        rows = max(1, self.block_elements // weight.size(1))
        xb = x.to(torch.bfloat16)
        if weight.size(0) <= rows:
            return F.linear(xb, weight.to(torch.bfloat16)).to(x.dtype)
        parts: List[torch.Tensor] = []
        for start in range(0, weight.size(0), rows):
            parts.append(F.linear(xb, weight[start:start + rows].to(torch.bfloat16)))
        return torch.cat(parts, 1).to(x.dtype)

    @torch.jit.export
    def linear_bias(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """As linear, plus a bias added in x's type."""
        return self.linear(x, weight) + bias.to(x.dtype)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self.linear(x, weight)


def main():
    scripted.write(BFloat16Products(BLOCK_ELEMENTS), "bfloat16-products.pt")


if __name__ == "__main__":
    main()

"""Writes the TorchScript module behind Kernels.select (GRIFFIN's expert gathering).

    python tools/torchscript/make_index_select.py      # needs torch==2.7.1 (tools/reference/requirements.txt)

A sequence's experts are rows of the stacked gate/up matrix and columns of the down matrix. DJL
indexes with an index array through libtorch's advanced indexing, an element-wise kernel; libtorch's
index_select copies whole rows and runs several times faster (torch 2.7.1, 2 threads, half of
SmolLM2's 1536 neurons: 0.34 against 3.1 ms for the gate/up rows, 2.2 against 4.7 ms for the down
columns), but DJL cannot call it. This module does, and nothing else. Columns go through gather
instead, with the index broadcast over the rows: half of the 8960 down columns of a 1.5B model,
float16, took 18.7 ms against index_select's 27.6 (mean of 20 layers' worth, each kept, as a
sequence keeps its experts).

The module holds no weights: the file is a few kilobytes and is committed at
src/main/resources/dev/griffin/serve/model/index-select.pt. torch must match the libtorch that
DJL's pytorch-native-cpu bundles (2.7.1) for the engine to load it.
"""

import torch

import scripted


class IndexSelect(torch.nn.Module):

    @torch.jit.export
    def select(self, x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
        """The entries of x at `index` (int64) along `dim`, contiguous."""
        if dim == 1 and x.dim() == 2:
            # columns: gather with the index broadcast over the rows ran about 1.5x faster than
            # index_select along dim 1
            return torch.gather(x, 1, index.unsqueeze(0).expand(x.size(0), index.size(0)))
        return torch.index_select(x, dim, index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def main():
    scripted.write(IndexSelect(), "index-select.pt")


if __name__ == "__main__":
    main()

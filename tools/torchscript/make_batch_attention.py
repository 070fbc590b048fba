"""Writes the TorchScript module behind a batched decode step's attention (Attention.forwardBatch).

    python tools/torchscript/make_batch_attention.py   # needs torch==2.7.1 (tools/reference/requirements.txt)

In a batched decode step every row attends over its own sequence's KV cache, whose length differs
from row to row. Done from Java, that is about a dozen DJL operations per row and layer (each a JNI
call with its own bookkeeping): at 16 rows on a 30-layer model, thousands per step, which cost more
than reading the weights. This module runs the same per-row work inside libtorch, one call per
layer: it writes each row's new key and value into that row's cache at its position, then computes
softmax(q k^T) v over the row's window of the cache (softmax in float32), exactly as the engine's
one-sequence step does. When the rows' caches are ranges of one preallocated arena (KvArena), a
second method does the same in a few operations per layer: one write of every row's key and value,
one copy of every row's window into a padded batch, and one masked attention over it.

A cache may hold its keys and values in a narrower type than the queries (a float16 cache beside
float32 attention on the CPU, ModelOptions.cacheDataType): new keys and values are written rounded to
the cache's type, and what attention reads is widened to the queries' type.

The module holds no weights: the file is a few kilobytes and is committed at
src/main/resources/dev/griffin/serve/model/batch-attention.pt. torch must match the libtorch that
DJL's pytorch-native-cpu bundles (2.7.1) for the engine to load it.
"""
from typing import List

import torch

import scripted


def capped(scores: torch.Tensor, softcap: float) -> torch.Tensor:
    # Gemma 2's attention logit soft-capping, cap * tanh(scores / cap), after the scale; 0: none
    if softcap > 0.0:
        return torch.tanh(scores / softcap) * softcap
    return scores


def row_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                  position: int, start: int, scale: float, apply_scale: bool, softcap: float) -> torch.Tensor:
    """One sequence's generated token, as the engine's one-sequence step computes it: its key and value
    k, v [KVH, 1, Dh] written into its cache keys, values [KVH, capacity, Dh] at position, then its
    queries q [KVH, G, Dh] attend over [start, position] (softmax in float32). Returns [KVH, G, Dh]."""
    keys[:, position:position + 1].copy_(k)
    values[:, position:position + 1].copy_(v)
    scores = torch.matmul(q, keys[:, start:position + 1].to(q.dtype).transpose(1, 2))
    if apply_scale:
        scores = scores * scale
    scores = capped(scores, softcap)
    if scores.dtype == torch.float32:
        probabilities = scores.softmax(-1)
    else:
        probabilities = scores.float().softmax(-1).to(scores.dtype)
    return torch.matmul(probabilities, values[:, start:position + 1].to(probabilities.dtype))


def gathered_attention(qk: torch.Tensor, v: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                       write: torch.Tensor, gather: torch.Tensor, masked: torch.Tensor, heads: int, scale: float,
                       apply_scale: bool, softcap: float) -> torch.Tensor:
    """A batch's attention when its rows' caches are ranges of one arena: keys and values [KVH, tokens,
    Dh]; row i's new key and value (qk [B, H+KVH, Dh] rotated, v [B, KVH*Dh]) go to token write[i];
    gather [B*W] names, row after row, the W arena tokens each row attends over, and masked
    [B, 1, 1, W] (true: not attended) marks the ones outside the row's window. A few operations
    whatever B is: the windows are copied out once and attended as one padded batch. Returns
    [B, H*Dh]."""
    rows = qk.shape[0]
    key_value_heads = qk.shape[1] - heads
    dh = qk.shape[2]
    group = heads // key_value_heads
    keys.index_copy_(1, write, qk[:, heads:].transpose(0, 1).to(keys.dtype))
    values.index_copy_(1, write, v.reshape(rows, key_value_heads, dh).transpose(0, 1).to(values.dtype))
    width = gather.shape[0] // rows
    k = keys.index_select(1, gather).to(qk.dtype).reshape(key_value_heads, rows, width, dh).transpose(0, 1)
    vs = values.index_select(1, gather).to(qk.dtype).reshape(key_value_heads, rows, width, dh).transpose(0, 1)
    q = qk[:, :heads].reshape(rows, key_value_heads, group, dh)
    scores = torch.matmul(q, k.transpose(2, 3))
    if apply_scale:
        scores = scores * scale
    scores = capped(scores, softcap)
    if scores.dtype != torch.float32:
        scores = scores.float()
    probabilities = scores.masked_fill(masked, float("-inf")).softmax(-1).to(vs.dtype)
    return torch.matmul(probabilities, vs).reshape(rows, heads * dh)


class BatchAttention(torch.nn.Module):

    @torch.jit.export
    def attend(self, qk: torch.Tensor, v: torch.Tensor, keys: List[torch.Tensor], values: List[torch.Tensor],
               positions: List[int], starts: List[int], heads: int, scale: float,
               apply_scale: bool, softcap: float) -> torch.Tensor:
        """qk [B, H+KVH, Dh] (rotated queries then keys), v [B, KVH*Dh]; keys[i] and values[i]
        [KVH, capacity, Dh] are row i's cache, written at positions[i]; row i attends over
        [starts[i], positions[i]]. Returns [B, H*Dh]."""
        rows = qk.shape[0]
        key_value_heads = qk.shape[1] - heads
        dh = qk.shape[2]
        group = heads // key_value_heads
        out: List[torch.Tensor] = []
        for i in range(rows):
            out.append(row_attention(qk[i, :heads].reshape(key_value_heads, group, dh),
                                     qk[i, heads:].reshape(key_value_heads, 1, dh),
                                     v[i].reshape(key_value_heads, 1, dh), keys[i], values[i], positions[i],
                                     starts[i], scale, apply_scale, softcap).reshape(1, heads * dh))
        return torch.cat(out, 0)

    @torch.jit.export
    def attend_gathered(self, qk: torch.Tensor, v: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                        write: torch.Tensor, gather: torch.Tensor, masked: torch.Tensor, heads: int, scale: float,
                        apply_scale: bool, softcap: float) -> torch.Tensor:
        """The same for rows whose caches are ranges of one arena (see gathered_attention)."""
        return gathered_attention(qk, v, keys, values, write, gather, masked, heads, scale, apply_scale, softcap)

    def forward(self, qk: torch.Tensor) -> torch.Tensor:
        return qk


def main():
    scripted.write(BatchAttention(), "batch-attention.pt")


if __name__ == "__main__":
    main()

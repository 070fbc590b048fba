"""Writes the TorchScript module behind a whole decoder layer of a batched decode step (BatchLayer).

    python tools/torchscript/make_batch_layer.py   # needs torch==2.7.1 (tools/reference/requirements.txt)

A batched decode step's layer is about thirty small libtorch operations when Java calls them one by
one through DJL (norms, rotation, slices, the gated activation, residual adds), each a JNI call with
its own bookkeeping; at a few rows they cost as much as a large part of the weight reads. This module
runs the same layer in one call (step; step_one does the same for one sequence's generated token,
the LAYER decode form): RMS norm, the q/k/v product, the rotation, the attention of rows
whose KV caches are ranges of one arena (make_batch_attention.gathered_attention), the output
product and residual, RMS norm, the gated feed-forward block (its gate's activation SiLU, ReLU or GELU,
optionally masked per row to GRIFFIN's experts) and residual. Products go through oneDNN (torch.ops.mkldnn._linear_pointwise) on the
weights' packed copies, as the engine's oneDNN form does; step is float32 only. step_one takes
float32 or float16 weights, plain (libtorch's product) or packed (oneDNN's).

The module holds no weights: the file is a few kilobytes and is committed at
src/main/resources/dev/griffin/serve/model/batch-layer.pt. torch must match the libtorch that DJL's
pytorch-native-cpu bundles (2.7.1) for the engine to load it.
"""
from typing import Optional

import torch

import scripted
from make_batch_attention import gathered_attention, row_attention


def normalised(x: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
    # x / sqrt(mean(x^2) + eps), in x's type (float32 here)
    return x.div(x.square().mean(-1, keepdim=True).add(epsilon).sqrt())


def rms_norm(x: torch.Tensor, weight: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
    # as RmsNorm on float32 x
    return normalised(x, epsilon).mul(weight)


def typed_rms_norm(x: torch.Tensor, weight: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
    # as RmsNorm on float32 or float16 x: normalised in float32, back in x's type, then scaled
    return normalised(x.float(), epsilon).to(x.dtype).mul(weight)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def gated(gate_up: torch.Tensor, activation: int) -> torch.Tensor:
    # act(gate) * up for stacked products [T, 2F] -> [T, F]; activation is HiddenActivation.code()
    neurons = gate_up.shape[1] // 2
    gate = gate_up[:, :neurons]
    if activation == 0:
        active = gate.mul(torch.sigmoid(gate))
    elif activation == 1:
        active = torch.relu(gate)
    elif activation == 2:
        active = torch.nn.functional.gelu(gate, approximate="tanh")
    else:
        raise RuntimeError("unknown hidden activation code")
    return active.mul(gate_up[:, neurons:])


def product(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    # a oneDNN-packed copy goes through oneDNN, a plain matrix through libtorch's own product
    if weight.is_mkldnn:
        return linear(x, weight, bias)
    return torch.nn.functional.linear(x, weight, bias)


def attend_one_token(qkv: torch.Tensor, rotation: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                     position: int, start: int, heads: int, scale: float, apply_scale: bool) -> torch.Tensor:
    # one sequence's token: rotation, cache write and attention in float32 (a float16 cache rounds
    # what it stores and is widened where it is read), the context back in qkv's type:
    # [1, (H + 2 KVH) Dh] -> [1, H Dh]
    key_value_heads = keys.shape[0]
    dh = keys.shape[2]
    group = heads // key_value_heads
    wide = qkv.float()
    qk = torch.matmul(wide[:, :(heads + key_value_heads) * dh].reshape(1, heads + key_value_heads, dh), rotation)
    v = wide[:, (heads + key_value_heads) * dh:(heads + 2 * key_value_heads) * dh]
    context = row_attention(qk[0, :heads].reshape(key_value_heads, group, dh),
                            qk[0, heads:].reshape(key_value_heads, 1, dh), v.reshape(key_value_heads, 1, dh),
                            keys, values, position, start, scale, apply_scale, 0.0).reshape(1, heads * dh)
    return context.to(qkv.dtype)


class BatchLayer(torch.nn.Module):

    @torch.jit.export
    def step(self, x: torch.Tensor, attention_norm: torch.Tensor, ffn_norm: torch.Tensor, epsilon: torch.Tensor,
             query_key_value: torch.Tensor, query_key_value_bias: torch.Tensor, rotation: torch.Tensor,
             keys: torch.Tensor, values: torch.Tensor, write: torch.Tensor, gather: torch.Tensor,
             masked: torch.Tensor, heads: int, scale: float, apply_scale: bool, output: torch.Tensor,
             gate_up: torch.Tensor, down: torch.Tensor, keep: torch.Tensor, activation: int) -> torch.Tensor:
        """x [B, D] -> [B, D]. rotation [B, Dh, Dh] (each row's rotary matrix); keys and values
        [KVH, tokens, Dh] the layer's arena, written at write [B], gathered at gather [B*W] with
        masked [B, 1, 1, W]; gate_up [2F, D] stacked, down [D, F]; keep [B, F] (1: the row reads that
        neuron), or empty when every row is dense; query_key_value_bias empty when there is none
        (DJL cannot pass None); activation the gate's (HiddenActivation.code()). Weights are
        oneDNN-packed copies."""
        bias: Optional[torch.Tensor] = None
        if query_key_value_bias.numel() > 0:
            bias = query_key_value_bias
        rows = x.shape[0]
        key_value_heads = keys.shape[0]
        dh = keys.shape[2]
        qkv = linear(rms_norm(x, attention_norm, epsilon), query_key_value, bias)
        qk = torch.matmul(qkv[:, :(heads + key_value_heads) * dh].reshape(rows, heads + key_value_heads, dh),
                          rotation)
        v = qkv[:, (heads + key_value_heads) * dh:(heads + 2 * key_value_heads) * dh]
        context = gathered_attention(qk, v, keys, values, write, gather, masked, heads, scale, apply_scale, 0.0)
        h = x + linear(context, output, None)
        z = gated(linear(rms_norm(h, ffn_norm, epsilon), gate_up, None), activation)
        if keep.numel() > 0:
            z = z.mul(keep)
        return h + linear(z, down, None)

    @torch.jit.export
    def step_one(self, x: torch.Tensor, attention_norm: torch.Tensor, ffn_norm: torch.Tensor, epsilon: torch.Tensor,
                 query_key_value: torch.Tensor, query_key_value_bias: torch.Tensor, rotation: torch.Tensor,
                 keys: torch.Tensor, values: torch.Tensor, position: int, start: int, heads: int, scale: float,
                 apply_scale: bool, output: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor,
                 activation: int) -> torch.Tensor:
        """One generated token of one sequence (Kernels.Decode.LAYER): x [1, D] -> [1, D]. keys and
        values [KVH, capacity, Dh] are the sequence's cache of this layer, written at position and
        attended over [start, position]; gate_up and down are its feed-forward weights (dense, or
        its gathered experts). A plain weight's product is libtorch's own, on its thread pool, as
        the pool form runs it; a oneDNN-packed copy's (the engine passes them for float16 weights,
        where libtorch's float16 product is slower on CPUs without AVX512-FP16) is oneDNN's. Products
        run in the weights' type (float32 or float16: x and the residual stream are in that type
        too); norms and attention compute in float32 as the engine's one-sequence step does on the
        CPU, the cache being float32."""
        bias: Optional[torch.Tensor] = None
        if query_key_value_bias.numel() > 0:
            bias = query_key_value_bias
        qkv = product(typed_rms_norm(x, attention_norm, epsilon), query_key_value, bias)
        context = attend_one_token(qkv, rotation, keys, values, position, start, heads, scale, apply_scale)
        h = x + product(context, output, None)
        z = gated(product(typed_rms_norm(h, ffn_norm, epsilon), gate_up, None), activation)
        return h + product(z, down, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def main():
    scripted.write(BatchLayer(), "batch-layer.pt")


if __name__ == "__main__":
    main()

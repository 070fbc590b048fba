"""GRIFFIN applied to a Hugging Face model, written from the paper's formula.

Dong, Chen, Chi, "Prompt-prompted Adaptive Structured Pruning for Efficient LLM Generation" (COLM 2024):
the prompt runs the full feed-forward block; per neuron j the statistic s_j = || Zbar[:, j] ||_2, with
Zbar_t = Z_t / ||Z_t||_2 and Z = act(x W_gate^T) * (x W_up^T); the top-k neurons (k = floor(F * density))
are the experts that every generated token uses. In OPT's non-gated block Z = relu(fc1 x) (with fc1's bias),
the input of fc2: generation reads fc1's rows and bias entries E and fc2's columns E (fc2's bias whole).

This is the oracle for the Java engine: batch size 1, one sequence at a time.
"""
import math

import torch


class GriffinMlp(torch.nn.Module):
    def __init__(self, mlp, density):
        super().__init__()
        self.mlp = mlp
        self.density = density
        self.experts = None
        self.sum_of_squares = None
        self.gathered = None

    def reset(self):
        self.experts = None
        self.sum_of_squares = None
        self.gathered = None

    def forward(self, x):
        mlp = self.mlp
        if x.shape[1] > 1 or self.experts is None:
            z = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)  # [1, T, F]
            out = mlp.down_proj(z)
            zbar = z / z.norm(dim=-1, keepdim=True)
            squares = (zbar.double() ** 2).sum(dim=1)[0]  # [F]
            self.sum_of_squares = squares if self.sum_of_squares is None else self.sum_of_squares + squares
            f = z.shape[-1]
            k = int(math.floor(f * self.density))
            self.experts = torch.topk(self.sum_of_squares, k).indices.sort().values
            e = self.experts
            # gathered once per sequence, as generation then reads only these rows and columns
            self.gathered = (mlp.gate_proj.weight[e].contiguous(), mlp.up_proj.weight[e].contiguous(),
                             mlp.down_proj.weight[:, e].contiguous())
            return out
        gate_w, up_w, down_w = self.gathered
        gate = torch.nn.functional.linear(x, gate_w)
        up = torch.nn.functional.linear(x, up_w)
        return torch.nn.functional.linear(mlp.act_fn(gate) * up, down_w)


class OptExperts:
    """One OPT layer's GRIFFIN state, shared by the wrappers of its fc1 and fc2."""

    def __init__(self, density):
        self.density = density
        self.reset()

    def reset(self):
        self.experts = None
        self.sum_of_squares = None
        self.generating = False


class GriffinFc1(torch.nn.Module):
    """fc1: every row in the prompt, rows E (and their bias entries) in generation."""

    def __init__(self, fc1, state):
        super().__init__()
        self.fc1 = fc1
        self.state = state

    def forward(self, x):
        s = self.state
        s.generating = x.shape[-2] == 1 and s.experts is not None
        if not s.generating:
            return self.fc1(x)
        e = s.experts
        return torch.nn.functional.linear(x, self.fc1.weight[e], self.fc1.bias[e])


class GriffinFc2(torch.nn.Module):
    """fc2: in the prompt it sees Z = relu(fc1 x), accumulates the statistic and picks E; in generation it
    reads columns E."""

    def __init__(self, fc2, state):
        super().__init__()
        self.fc2 = fc2
        self.state = state

    def forward(self, z):
        s = self.state
        if s.generating:
            return torch.nn.functional.linear(z, self.fc2.weight[:, s.experts], self.fc2.bias)
        zbar = z / z.norm(dim=-1, keepdim=True)
        squares = (zbar.double() ** 2).reshape(-1, z.shape[-1]).sum(dim=0)  # [F]
        s.sum_of_squares = squares if s.sum_of_squares is None else s.sum_of_squares + squares
        k = int(math.floor(z.shape[-1] * s.density))
        s.experts = torch.topk(s.sum_of_squares, k).indices.sort().values
        return self.fc2(z)


def _layers(model):
    inner = model.model
    if hasattr(inner, "language_model"):  # a multimodal model's language model
        return inner.language_model.layers
    return inner.decoder.layers if hasattr(inner, "decoder") else inner.layers


def _is_opt(layer):
    return hasattr(layer, "fc1")


def apply_griffin(model, density):
    for layer in _layers(model):
        if _is_opt(layer):
            if isinstance(layer.fc1, GriffinFc1):
                layer.fc1.state.density = density
            else:
                state = OptExperts(density)
                layer.fc1 = GriffinFc1(layer.fc1, state)
                layer.fc2 = GriffinFc2(layer.fc2, state)
        elif isinstance(layer.mlp, GriffinMlp):
            layer.mlp.density = density
        else:
            layer.mlp = GriffinMlp(layer.mlp, density)
    return model


def reset_griffin(model):
    for layer in _layers(model):
        if _is_opt(layer):
            if isinstance(layer.fc1, GriffinFc1):
                layer.fc1.state.reset()
        elif isinstance(layer.mlp, GriffinMlp):
            layer.mlp.reset()


def selected_experts(model):
    return [(layer.fc1.state.experts if _is_opt(layer) else layer.mlp.experts).tolist() for layer in _layers(model)]


def remove_griffin(model):
    for layer in _layers(model):
        if _is_opt(layer):
            if isinstance(layer.fc1, GriffinFc1):
                layer.fc1 = layer.fc1.fc1
                layer.fc2 = layer.fc2.fc2
        elif isinstance(layer.mlp, GriffinMlp):
            layer.mlp = layer.mlp.mlp
    return model

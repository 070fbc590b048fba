"""GRIFFIN applied to a Hugging Face Llama-family model, written from the paper's formula.

Dong, Chen, Chi, "Prompt-prompted Adaptive Structured Pruning for Efficient LLM Generation" (COLM 2024):
the prompt runs the full feed-forward block; per neuron j the statistic s_j = || Zbar[:, j] ||_2, with
Zbar_t = Z_t / ||Z_t||_2 and Z = act(x W_gate^T) * (x W_up^T); the top-k neurons (k = floor(F * density))
are the experts that every generated token uses.

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


def apply_griffin(model, density):
    layers = model.model.layers
    for layer in layers:
        if isinstance(layer.mlp, GriffinMlp):
            layer.mlp.density = density
        else:
            layer.mlp = GriffinMlp(layer.mlp, density)
    return model


def reset_griffin(model):
    for layer in model.model.layers:
        if isinstance(layer.mlp, GriffinMlp):
            layer.mlp.reset()


def selected_experts(model):
    return [layer.mlp.experts.tolist() for layer in model.model.layers]


def remove_griffin(model):
    for layer in model.model.layers:
        if isinstance(layer.mlp, GriffinMlp):
            layer.mlp = layer.mlp.mlp
    return model

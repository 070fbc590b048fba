"""How far int8 weight formats move a model's next-token distribution: the quality half of the question
bench_products.py answers for speed. The engine itself does not run this.

    python tools/reference/int8_fidelity.py ~/.cache/griffin-serve/models/SmolLM2-135M-Instruct.Q4_1.gguf

Loads the GGUF through transformers in float32 (the engine's reference), lets it continue a few prompts
greedily, and scores each continuation teacher-forced under a copy whose attention and feed-forward
products use another weight format: mean per-token KL(float32 || format) with its standard error, and
top-1 agreement. Formats:
- fbgemm's dynamically quantised linear (`quantized.linear_dynamic` on prepacked int8 weights with a
  scale per row): the fastest one-row int8 product bench_products.py found; it also rounds each
  activation row to 8 bits with one scale for the whole row;
- int8 weights with a scale per row and float activations (`_weight_int8pack_mm`'s weight format,
  simulated in float32 here, so only the weights' rounding is measured);
- int8 weights with a scale per 32 weights (GGUF Q8_0's granularity), simulated the same way.
Needs tools/reference/requirements.txt.
"""

import argparse
import copy
import os

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "Write a short poem about the sea.",
    "def fibonacci(n):",
    "Explain why the sky is blue in one paragraph.",
    "List three uses of copper:",
]

PRODUCTS = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"), "mlp": ("gate_proj", "up_proj", "down_proj")}


class Fbgemm(torch.nn.Module):
    """Int8 weights with a scale per output row, activations quantised per row by fbgemm."""

    def __init__(self, linear):
        super().__init__()
        w = linear.weight.detach().float()
        scales = w.abs().amax(1).clamp(min=1e-12) / 127
        q = torch.quantize_per_channel(w, scales.double(), torch.zeros(w.shape[0], dtype=torch.long), 0,
                                       torch.qint8)
        self.packed = torch.ops.quantized.linear_prepack(q, None)
        self.bias = linear.bias

    def forward(self, x):
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, x.shape[-1]), self.packed)
        y = y.reshape(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias


class Rounded(torch.nn.Module):
    """Float activations times weights rounded to int8 with a scale per `block` weights of a row (None: per row)."""

    def __init__(self, linear, block):
        super().__init__()
        w = linear.weight.detach().float()
        groups = w.reshape(w.shape[0], -1, block) if block else w.unsqueeze(1)
        scales = groups.abs().amax(-1, keepdim=True).clamp(min=1e-12) / 127
        self.weight = (torch.round(groups / scales) * scales).reshape(w.shape)
        self.bias = linear.bias

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


def replaced(model, make):
    other = copy.deepcopy(model)
    for layer in other.model.layers:
        for block, names in PRODUCTS.items():
            owner = getattr(layer, block)
            for name in names:
                setattr(owner, name, make(getattr(owner, name)))
    return other


def score(tokenizer, reference, other, new_tokens):
    kls, agree, total = [], 0, 0
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            sequence = reference.generate(ids, max_new_tokens=new_tokens, do_sample=False)
            positions = slice(ids.shape[1] - 1, -1)
            expected = F.log_softmax(reference(sequence).logits[0, positions], -1)
            actual = F.log_softmax(other(sequence).logits[0, positions], -1)
        kls.append((expected.exp() * (expected - actual)).sum(-1))
        agree += (expected.argmax(-1) == actual.argmax(-1)).sum().item()
        total += expected.shape[0]
    kl = torch.cat(kls)
    return kl.mean().item(), kl.std().item() / kl.numel() ** 0.5, agree / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    directory, name = os.path.split(os.path.abspath(args.gguf))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32).eval()
    formats = {
        "fbgemm linear_dynamic (int8 weights per row, activations per row)": Fbgemm,
        "int8 weights per row, float activations": lambda linear: Rounded(linear, None),
        "int8 weights per 32 (Q8_0's blocks), float activations": lambda linear: Rounded(linear, 32),
    }
    print(f"{len(PROMPTS)} prompts x {args.new_tokens} greedy tokens of the float32 model")
    for label, make in formats.items():
        kl, error, agreement = score(tokenizer, model, replaced(model, make), args.new_tokens)
        print(f"{label}: KL {kl:.4f} +- {error:.4f}, top-1 agreement {agreement:.3f}")


if __name__ == "__main__":
    main()

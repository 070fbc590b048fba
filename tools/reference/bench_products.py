"""Weight products in libtorch, by weight format: how fast each reads a model's matrices on this CPU
for one activation row (a decode step) or a few (a batched step), beside a plain read of memory. It
informs which formats the engine could decode with; the engine itself does not run this.

    python tools/reference/bench_products.py --hidden 1536 --intermediate 8960   # Qwen2.5 1.5B shapes
    python tools/reference/bench_products.py --hidden 576 --intermediate 1536 --qkv-rows 960 --rows 4
                                                                 # SmolLM2-135M, 4 rows per product

Needs torch==2.7.1 (tools/reference/requirements.txt), the libtorch DJL bundles. Each format
multiplies `--rows` activation rows (default 1) by `--copies` copies of each of a layer's matrices
(more than the caches hold), on `--threads` threads; prints milliseconds for one pass over a layer's
matrices, GB/s of weight bytes and billions of weights per second.
Formats: float32 and float16 through F.linear; float32, float16 and bfloat16 packed once for oneDNN
(`_reorder_linear_weight`, then `_linear_pointwise`, as the engine's packed copies); float16 packed
for fbgemm (`linear_prepack_fp16`, then `linear_dynamic_fp16`, float32 activations); int8 weights
with one float scale per output row through `_weight_int8pack_mm` (activations in bfloat16) and
through fbgemm's dynamically quantised linear on prepacked weights (`quantized.linear_dynamic`).
The int8 formats quantise per row, coarser than GGUF's Q8_0 (a scale per 32 weights).
"""

import argparse
import time

import torch


def timed(run, repeats: int) -> float:
    """Seconds per call, after two warm-up calls."""
    for _ in range(2):
        run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def read_bandwidth(repeats: int) -> float:
    """GB/s of the faster of a sum over a 1 GiB buffer and the buffer, as 1024-wide rows, times a
    vector (as `bench` measures it: on some CPUs the sum runs below memory speed)."""
    buffer = torch.ones(1 << 28)
    rows, vector = buffer.view(-1, 1024), torch.ones(1024)
    fastest = min(timed(buffer.sum, repeats), timed(lambda: torch.mv(rows, vector), repeats))
    return buffer.numel() * 4 / fastest / 1e9


def formats():
    """name -> (bytes per weight, make(matrix float32 [out, in]) -> prepared, multiply(x float32, prepared))."""

    def onednn(dtype):
        return (torch.finfo(dtype).bits // 8, lambda w: torch.ops.mkldnn._reorder_linear_weight(w.to(dtype), 16),
                lambda x, p: torch.ops.mkldnn._linear_pointwise(x.to(dtype), p, None, "none", [], ""))

    def per_row_scales(w):
        return w.abs().amax(1).clamp(min=1e-8) / 127

    def int8_weight_only(w):
        scales = per_row_scales(w)
        return (torch.round(w / scales[:, None]).to(torch.int8), scales.to(torch.bfloat16))

    def fbgemm(w):
        scales = per_row_scales(w)
        q = torch.quantize_per_channel(w, scales.double(), torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None)

    return {
        "float32 F.linear": (4, lambda w: w, lambda x, w: torch.nn.functional.linear(x, w)),
        "float16 F.linear": (2, lambda w: w.half(), lambda x, w: torch.nn.functional.linear(x.half(), w)),
        "float32 oneDNN packed": onednn(torch.float32),
        "float16 oneDNN packed": onednn(torch.float16),
        "bfloat16 oneDNN packed": onednn(torch.bfloat16),
        # fbgemm's float16 product: weights packed once as float16, float32 activations and sums
        "float16 fbgemm packed": (2, lambda w: torch.ops.quantized.linear_prepack_fp16(w, None),
                                  lambda x, p: torch.ops.quantized.linear_dynamic_fp16(x, p)),
        "int8 _weight_int8pack_mm": (1, int8_weight_only,
                                     lambda x, p: torch._weight_int8pack_mm(x.to(torch.bfloat16), p[0], p[1])),
        "int8 fbgemm linear_dynamic": (1, fbgemm, lambda x, p: torch.ops.quantized.linear_dynamic(x, p)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--intermediate", type=int, default=8960)
    parser.add_argument("--copies", type=int, default=8, help="copies of each matrix (default 8)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1, help="activation rows per product (default 1)")
    parser.add_argument("--qkv-rows", type=int, help="rows of the fused q/k/v matrix (default: Qwen2.5's, "
                        "hidden + 2 * hidden / 6)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, f = args.hidden, args.intermediate
    qkv = args.qkv_rows or d + 2 * (d // 6)
    shapes = [(2 * f, d), (d, f), (qkv, d), (d, d)]  # gate/up, down, q/k/v, output
    print(f"torch {torch.__version__}, {args.threads} threads, shapes {shapes}, {args.copies} copies each, "
          f"{args.rows} activation rows")
    print(f"read bandwidth (1 GiB): {read_bandwidth(args.repeats):.1f} GB/s")
    for name, (width, make, multiply) in formats().items():
        seconds, weights = 0.0, 0
        try:
            for out, inp in shapes:
                prepared = [make(torch.randn(out, inp)) for _ in range(args.copies)]
                x = torch.randn(args.rows, inp)
                seconds += timed(lambda: [multiply(x, p) for p in prepared], args.repeats)
                weights += out * inp * args.copies
        except RuntimeError as ex:
            print(f"{name:28s} fails: {str(ex).splitlines()[0][:120]}")
            continue
        print(f"{name:28s} {seconds / args.copies * 1e3:7.2f} ms per layer {weights * width / seconds / 1e9:6.1f} GB/s "
              f"{weights / seconds / 1e9:6.1f} G weights/s")


if __name__ == "__main__":
    main()

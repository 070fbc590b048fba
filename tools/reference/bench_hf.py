"""The bench workload on Hugging Face transformers, dense and with GRIFFIN (griffin_hf.py), for a
side-by-side with ours on the same weights (the default GGUF dequantised), dtype and threads.

    python tools/reference/bench_hf.py --threads 2 --prompt-tokens 128,512 --new-tokens 128 --dtypes float32
    python tools/reference/bench_hf.py ... --ours target/bench.json     # adds ours/HF ratios

Prints prefill tok/s, decode tok/s and time to first token (medians of --runs after --warmups unmeasured
runs) for every prompt length x generated length, and writes --output (target/bench-hf.json).
scripts/bench-vs-hf runs both benches over the same grid.
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import griffin_hf  # noqa: E402

# The same prose as the Java bench (BenchCommand.TEXT), so both see the same token ids.
TEXT = ("The river rises in the hills above the town and runs for forty miles to the sea. In spring the snow melts "
        "and the water climbs the stone walls that the first settlers built, and every few years it spills into the "
        "low streets near the market. The council has argued for a decade about a new barrier: engineers say it "
        "would protect four hundred homes, shop owners worry that years of building work would keep visitors away, "
        "and farmers upstream want the money spent on reservoirs instead. Last week the regional government offered "
        "to pay half of the cost if the town finds the rest by the end of next year. ")


@torch.no_grad()
def run(model, prompt, new_tokens):
    start = time.perf_counter()
    out = model(torch.tensor([prompt]), use_cache=True)
    past, logits = out.past_key_values, out.logits[0, -1]
    token = int(logits.argmax())
    first = time.perf_counter()
    decode_start = time.perf_counter()
    for _ in range(new_tokens - 1):
        out = model(torch.tensor([[token]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = int(out.logits[0, -1].argmax())
    end = time.perf_counter()
    return len(prompt) / (first - start), (new_tokens - 1) / (end - decode_start), (first - start) * 1000


def prompt_ids(tokenizer, length):
    text, ids = "", []
    while len(ids) < length:
        text += TEXT
        ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[:length]


def print_summary(rows, densities):
    """Decode tokens/s side by side as a Markdown table, one line per dtype and shape."""
    by_key = {(r["dtype"], r["promptTokens"], r["newTokens"], r["density"]): r for r in rows}
    sparse = [d for d in densities if d < 1.0]
    header = "| dtype | prompt | new | dense: ours | HF | ours/HF |"
    rule = "| --- | --- | --- | --- | --- | --- |"
    for d in sparse:
        header += f" GRIFFIN {d}: ours | HF | ours/HF | ours GRIFFIN/dense |"
        rule += " --- | --- | --- | --- |"
    print()
    print("decode tokens/s, medians:")
    print(header)
    print(rule)
    for (dtype, prompt, new, density), row in by_key.items():
        if density != 1.0 or row["oursDecodeTokensPerSecond"] is None:
            continue
        line = (f"| {dtype} | {prompt} | {new} | {row['oursDecodeTokensPerSecond']:.1f} | "
                f"{row['decodeTokensPerSecond']:.1f} | {row['oursOverHf']:.2f}x |")
        for d in sparse:
            g = by_key.get((dtype, prompt, new, d))
            if g is None or g["oursDecodeTokensPerSecond"] is None:
                line += " - | - | - | - |"
                continue
            line += (f" {g['oursDecodeTokensPerSecond']:.1f} | {g['decodeTokensPerSecond']:.1f} | "
                     f"{g['oursOverHf']:.2f}x | "
                     f"{g['oursDecodeTokensPerSecond'] / row['oursDecodeTokensPerSecond']:.2f}x |")
        print(line)
    print()
    print("time to first token ms, medians (ours / HF):")
    print("| dtype | prompt | new | " + " | ".join("dense" if d == 1.0 else f"GRIFFIN {d}" for d in densities) + " |")
    print("| --- | --- | --- |" + " --- |" * len(densities))
    for (dtype, prompt, new, density), row in by_key.items():
        if density != 1.0:
            continue
        cells = []
        for d in densities:
            r = by_key.get((dtype, prompt, new, d))
            cells.append(f"{r['oursTimeToFirstTokenMs']:.0f} / {r['timeToFirstTokenMs']:.0f}"
                         if r and r["oursTimeToFirstTokenMs"] is not None else "-")
        print(f"| {dtype} | {prompt} | {new} | " + " | ".join(cells) + " |")


def load_ours(path):
    """Our bench's rows by (dtype, prompt tokens, new tokens, density)."""
    return {(r["dtype"], r["promptTokens"], r["newTokens"], float(r["density"])): r
            for r in json.load(open(path))["results"]}


def check_dequantised(model, dtype):
    """The comparison is with plain dequantised layers: transformers may warn that GGUF weights stay
    packed, which would make this a different workload. Fail rather than measure that."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    others = sorted({type(m).__name__ for m in model.modules() if "quant" in type(m).__name__.lower()})
    wrong = sorted({str(m.weight.dtype) for m in linears if m.weight.dtype != dtype})
    if not linears or others or wrong:
        sys.exit(f"expected plain {dtype} Linear layers, found {len(linears)} Linear, "
                 f"quantised modules {others}, weight dtypes {wrong}")


def reuse(args):
    ours = load_ours(args.ours)
    report = json.load(open(args.reuse))
    for row in report["results"]:
        our_row = ours.get((row["dtype"], row["promptTokens"], row["newTokens"], row["density"]))
        row["oursDecodeTokensPerSecond"] = our_row["decodeTokensPerSecond"] if our_row else None
        row["oursTimeToFirstTokenMs"] = our_row["timeToFirstTokenMs"] if our_row else None
        row["oursOverHf"] = (our_row["decodeTokensPerSecond"] / row["decodeTokensPerSecond"]) if our_row else None
    print_summary(report["results"], sorted({r["density"] for r in report["results"]}, reverse=True))
    json.dump(report, open(args.output, "w"), indent=2)
    print(f"wrote {args.output}")


def int_list(text):
    return [int(v) for v in text.split(",")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.path.expanduser(
        "~/.cache/griffin-serve/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--prompt-tokens", type=int_list, default=[512])
    parser.add_argument("--new-tokens", type=int_list, default=[128])
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--densities", default="1.0,0.5")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--ours", help="the JSON our bench wrote, for ours/HF ratios")
    parser.add_argument("--output", default="target/bench-hf.json")
    parser.add_argument("--reuse", help="HF results of an earlier run (its --output): measure nothing, "
                                        "recompute the ratios against --ours and print the summary")
    args = parser.parse_args()
    if args.reuse:
        reuse(args)
        return
    torch.set_num_threads(args.threads)
    path = pathlib.Path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    densities = [float(d) for d in args.densities.split(",")]
    ours = load_ours(args.ours) if args.ours else {}
    rows = []
    print(f"{'dtype':<8} {'prompt':>6} {'new':>4} {'model':<12} {'prefill t/s':>12} {'decode t/s':>11} "
          f"{'TTFT ms':>9} {'ours t/s':>9} {'ours/HF':>8}")
    for dtype in args.dtypes.split(","):
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=getattr(torch, dtype)).eval()
        check_dequantised(model, getattr(torch, dtype))
        for prompt_length in args.prompt_tokens:
            ids = prompt_ids(tokenizer, prompt_length)
            for new_tokens in args.new_tokens:
                for density in densities:
                    if density < 1.0:
                        griffin_hf.apply_griffin(model, density)
                    else:
                        griffin_hf.remove_griffin(model)
                    results = []
                    for _ in range(args.warmups + args.runs):
                        griffin_hf.reset_griffin(model)
                        results.append(run(model, ids, new_tokens))
                    results = results[args.warmups:]
                    prefill = statistics.median(r[0] for r in results)
                    decode = statistics.median(r[1] for r in results)
                    ttft = statistics.median(r[2] for r in results)
                    our_row = ours.get((dtype, prompt_length, new_tokens, density))
                    mine = our_row["decodeTokensPerSecond"] if our_row else None
                    name = "dense" if density == 1.0 else f"GRIFFIN {density}"
                    print(f"{dtype:<8} {prompt_length:>6} {new_tokens:>4} {name:<12} {prefill:>12.1f} {decode:>11.2f} "
                          f"{ttft:>9.1f} {mine if mine else float('nan'):>9.2f} "
                          f"{(f'{mine / decode:.2f}x' if mine else '-'):>8}", flush=True)
                    rows.append({"dtype": dtype, "promptTokens": prompt_length, "newTokens": new_tokens,
                                 "density": density, "prefillTokensPerSecond": prefill,
                                 "decodeTokensPerSecond": decode, "timeToFirstTokenMs": ttft,
                                 "runs": {"decodeTokensPerSecond": [r[1] for r in results]},
                                 "oursDecodeTokensPerSecond": mine,
                                 "oursTimeToFirstTokenMs": our_row["timeToFirstTokenMs"] if our_row else None,
                                 "oursOverHf": (mine / decode) if mine else None})
        del model
    if ours:
        print_summary(rows, densities)
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    json.dump({"threads": args.threads, "results": rows}, open(output, "w"), indent=2)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()

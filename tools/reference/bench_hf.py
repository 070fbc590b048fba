"""The bench workload on Hugging Face transformers, dense and with GRIFFIN (griffin_hf.py), for a
side-by-side with ours on the same weights (the default GGUF dequantised), dtype and threads.

    python tools/reference/bench_hf.py --threads 2 --prompt-tokens 512 --new-tokens 128 --dtypes float32
    python tools/reference/bench_hf.py ... --ours target/bench.json     # adds ours/HF ratios

Prints prefill tok/s, decode tok/s and time to first token (medians of --runs after one warm-up)
and writes target/bench-hf.json.
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

TEXT = ("The river rises in the hills above the town and runs for forty miles to the sea. In spring the snow melts "
        "and the water climbs the stone walls that the first settlers built, and every few years it spills into the "
        "low streets near the market. ")


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.path.expanduser(
        "~/.cache/griffin-serve/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--densities", default="1.0,0.5")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ours", help="target/bench.json of our bench, for ratios")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = pathlib.Path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ids = tokenizer.encode(TEXT * (args.prompt_tokens // 40 + 2), add_special_tokens=False)[: args.prompt_tokens]
    ours = {}
    if args.ours:
        for row in json.load(open(args.ours))["results"]:
            ours[(row["dtype"], float(row["density"]))] = row["decodeTokensPerSecond"]
    rows = []
    print(f"{'dtype':<8} {'model':<12} {'prefill t/s':>12} {'decode t/s':>11} {'TTFT ms':>9} {'ours/HF':>8}")
    for dtype in args.dtypes.split(","):
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=getattr(torch, dtype)).eval()
        for density in (float(d) for d in args.densities.split(",")):
            if density < 1.0:
                griffin_hf.apply_griffin(model, density)
            else:
                griffin_hf.remove_griffin(model)
            results = []
            for r in range(args.runs + 1):
                griffin_hf.reset_griffin(model)
                results.append(run(model, ids, args.new_tokens))
            results = results[1:]
            prefill = statistics.median(r[0] for r in results)
            decode = statistics.median(r[1] for r in results)
            ttft = statistics.median(r[2] for r in results)
            ratio = ours.get((dtype, density))
            ratio_text = f"{ratio / decode:.2f}x" if ratio else "-"
            name = "dense" if density == 1.0 else f"GRIFFIN {density}"
            print(f"{dtype:<8} {name:<12} {prefill:>12.1f} {decode:>11.2f} {ttft:>9.1f} {ratio_text:>8}", flush=True)
            rows.append({"dtype": dtype, "density": density, "prefillTokensPerSecond": prefill,
                         "decodeTokensPerSecond": decode, "timeToFirstTokenMs": ttft,
                         "oursOverHf": (ratio / decode) if ratio else None})
        del model
    pathlib.Path("target").mkdir(exist_ok=True)
    json.dump({"threads": args.threads, "promptTokens": args.prompt_tokens, "newTokens": args.new_tokens,
               "results": rows}, open("target/bench-hf.json", "w"), indent=2)
    print("wrote target/bench-hf.json")


if __name__ == "__main__":
    main()

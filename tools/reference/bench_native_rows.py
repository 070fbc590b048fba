"""The project's native products alone: how fast griffin_gemv (one activation row) and griffin_rows
(several: a batched decode step's or a prompt chunk's) read one large weight matrix, on this CPU,
outside the engine. It informs the kernels' forms (src/main/native/griffin_kernels.c); the engine
itself does not run this.

    mvn -B -q -DskipTests package
    python3 tools/reference/bench_native_rows.py                        # float32, 1, 4, 8, 16 rows
    python3 tools/reference/bench_native_rows.py --type float16 --tokens 1,4,32
    python3 tools/reference/bench_native_rows.py --cols 1536 --tokens 4,16 --passes 1024,16,256,2048

Standard library only (ctypes over the library the build puts in target/classes). The matrix is
--rows x --cols weights (default 200000 x 576: SmolLM2's row length, 460 MB in float32, more than
the caches hold); each count of activation rows is timed --repeats times and the fastest printed,
as GB/s of weight bytes. Each result's first rows are checked against a plain Python sum.

--passes COLUMNS,WIDEN,PASS,PART also times every count of several rows with those settings of
griffin_row_passes (tiles: columns per pass, the fewest float16 rows widened first; panels: columns
per pass and per part; 0: this CPU's own), the two alternating repeat by repeat in one process;
1024,16,256,2048 are the settings of CPUs with the three-row tiles (AVX2).
"""

import argparse
import array
import ctypes
import math
import os
import random
import struct
import time

TYPES = {"float32": (0, "f", 4), "float16": (1, "e", 2)}


def main():
    parser = argparse.ArgumentParser()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    parser.add_argument("--library", default=os.path.join(root, "target", "classes", "linux-x86-64",
                                                           "libgriffin_kernels.so"),
                        help="the built library (default: the build's, in this checkout's target/classes)")
    parser.add_argument("--type", choices=sorted(TYPES), default="float32")
    parser.add_argument("--rows", type=int, default=200000)
    parser.add_argument("--cols", type=int, default=576)
    parser.add_argument("--tokens", default="1,4,8,16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--passes", help="COLUMNS,WIDEN,PASS,PART: griffin_row_passes to compare with this CPU's")
    args = parser.parse_args()
    other = [int(v) for v in args.passes.split(",")] if args.passes else None
    if other is not None and len(other) != 4:
        raise SystemExit("--passes takes four numbers: COLUMNS,WIDEN,PASS,PART")
    lib = ctypes.CDLL(args.library)
    level = lib.griffin_init(args.threads)
    if level <= 0:
        raise SystemExit(f"griffin_init returned {level}: this CPU has no supported instruction set")
    print(f"instruction set level {level} (2: AVX2, 3: AVX-512), {lib.griffin_threads()} threads")
    code, fmt, size = TYPES[args.type]
    rng = random.Random(7)
    # a few distinct rows repeated: values that float16 holds exactly, read as any weights are
    pattern = [round(rng.uniform(-1, 1), 3) for _ in range(args.cols * 7)]
    pattern = list(struct.unpack(f"{len(pattern)}{fmt}", struct.pack(f"{len(pattern)}{fmt}", *pattern)))
    whole, rest = divmod(args.rows, 7)
    # the weights as floats (for the check) and in their stored form (float16 as its bits)
    w = array.array("f", pattern) * whole + array.array("f", pattern[: rest * args.cols])
    if fmt == "e":
        bits = list(struct.unpack(f"{len(pattern)}H", struct.pack(f"{len(pattern)}e", *pattern)))
        stored = array.array("H", bits) * whole + array.array("H", bits[: rest * args.cols])
        weights = (ctypes.c_uint16 * len(stored)).from_buffer(stored)
    else:
        weights = (ctypes.c_float * len(w)).from_buffer(w)
    nbytes = len(w) * size
    for tokens in [int(t) for t in args.tokens.split(",")]:
        x = [rng.uniform(-1, 1) for _ in range(tokens * args.cols)]
        xs = (ctypes.c_float * len(x))(*x)
        y = (ctypes.c_float * (tokens * args.rows))()
        settings = [[0, 0, 0, 0]] + ([other] if other is not None and tokens > 1 else [])
        best = [math.inf] * len(settings)
        error = [0.0] * len(settings)
        for repeat in range(args.repeats):
            for k, setting in enumerate(settings):
                lib.griffin_row_passes(*setting)
                start = time.perf_counter()
                if tokens == 1:
                    status = lib.griffin_gemv(weights, code, xs, y, 0, args.rows, args.cols)
                else:
                    status = lib.griffin_rows(weights, code, xs, y, 0, tokens, args.rows, args.cols)
                best[k] = min(best[k], time.perf_counter() - start)
                if status != 0:
                    raise SystemExit(f"the product returned {status}")
                if repeat < args.repeats - 1:
                    continue
                for i in range(tokens):
                    for r in range(min(args.rows, 8)):
                        want = sum(w[r * args.cols + c] * x[i * args.cols + c] for c in range(args.cols))
                        error[k] = max(error[k], abs(want - y[i * args.rows + r]))
        lib.griffin_row_passes(0, 0, 0, 0)
        for k, setting in enumerate(settings):
            label = "" if k == 0 else f" with passes {','.join(str(v) for v in setting)}"
            print(f"{tokens:>3} rows{label}: {nbytes / best[k] / 1e9:6.1f} GB/s ({best[k] * 1000:.1f} ms), "
                  f"largest difference to a plain sum {error[k]:.1e}")


if __name__ == "__main__":
    main()

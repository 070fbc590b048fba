#!/usr/bin/env python3
"""Where a profiled pass spends its time outside the project's native kernels.

Reads an async-profiler profile in its collapsed form (one line per stack, frames joined by
';', then a sample count; `threads` puts the thread's name first) and, for the samples of one
thread whose stack holds a given frame, prints the share whose leaf is outside the native
kernel library, and which of the project's frames those samples sit under.

    java -agentpath:/path/to/libasyncProfiler.so=start,event=cpu,interval=500us,threads,file=decode.collapsed \\
        -jar target/griffin-serve-*.jar bench --dtypes float16 --densities 1.0 \\
        --decode-kernel native --prefill-kernel native --prompt-tokens 512 --new-tokens 1000 --runs 1 --warmups 0
    tools/profile/outside_kernels.py decode.collapsed                       # a lone sequence's steps
    tools/profile/outside_kernels.py decode.collapsed --under decodeBatch   # a batch's steps (bench --batch)

async-profiler is on Maven Central (tools.profiler:async-profiler; the jar holds
linux-x64/libasyncProfiler.so). JNA extracts the kernel library to a temporary file, which
the profile names after it (jna...tmp); libm's expf is the kernels' too.
"""
import argparse
import collections


def kernel_leaf(frame):
    return (frame.startswith("/") and "jna" in frame and frame.endswith("(deleted)")) or frame == "__expf_fma"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--thread", default="[main", help="the thread's name as the profile starts its stacks")
    parser.add_argument("--under", default="InferenceSession.decode",
                        help="count only stacks with a frame containing this")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    total = 0
    outside = 0
    by_frame = collections.Counter()
    with open(args.profile) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            if not frames[0].startswith(args.thread) or not any(args.under in fr for fr in frames):
                continue
            n = int(count)
            total += n
            if kernel_leaf(frames[-1]):
                continue
            outside += n
            ours = [fr for fr in frames if fr.startswith("dev/griffin/")]
            by_frame[ours[-1] if ours else "(no project frame)"] += n
    if total == 0:
        raise SystemExit(f"no samples of {args.thread} under {args.under}")
    print(f"{total} samples under {args.under}: {100 * outside / total:.1f}% outside the native kernels")
    for frame, n in by_frame.most_common(args.top):
        print(f"  {100 * n / total:5.2f}%  {frame}")


if __name__ == "__main__":
    main()

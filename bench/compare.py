#!/usr/bin/env python3
"""CPU per probe of two credwatch binaries, before and after a change, in alternating runs:
bench.py's credwatch run (1,000 connections at 1,000 probes a second over HTTP keep-alive,
client and simulator pinned to a CPU each) with one binary, then the other, N times; the
medians side by side. See BENCHMARKS.md.

    python3 bench/compare.py BEFORE_BINARY AFTER_BINARY [--runs 5] [--window 10]

Build each binary with `cargo build --release` in a worktree of its commit. Everything runs on
127.0.0.1.
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py beside this file)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=int, default=10, help="seconds of measurement per run")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) >= 2:
        bench.PIN["server"] = ["taskset", "-c", "0"]
        bench.PIN["client"] = ["taskset", "-c", "1"]
        os.sched_setaffinity(0, {0})
    results = {"before": [], "after": []}
    for run in range(args.runs):
        for label in ("before", "after"):
            bench.BIN = os.path.abspath(getattr(args, label))
            print(f"run {run + 1}/{args.runs}: {label} ...", file=sys.stderr)
            result = bench.bench_credwatch(args.connections, args.rate, args.window, scrapes=3)
            results[label].append(result["cpu_s_per_1000"])
            print(json.dumps({label: result["cpu_s_per_1000"]}), file=sys.stderr)
    print(f"CPU seconds per 1,000 probes, {args.connections} connections at {args.rate}/s, {args.runs} alternating runs of {args.window} s")
    print("| binary | runs | median |")
    print("|---|---|---:|")
    for label in ("before", "after"):
        runs = ", ".join(f"{v:.4f}" for v in results[label])
        print(f"| {label} | {runs} | {statistics.median(results[label]):.4f} |")


if __name__ == "__main__":
    main()

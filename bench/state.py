#!/usr/bin/env python3
"""What the state store costs (see BENCHMARKS.md, "The state store"):

- CPU per probe at 1,000 connections and 1,000 probes a second, with and without the store,
  alternating, several runs each (bench.py's measurement, pinned the same way);
- the store's size per connection and its load time, and the time from start to a ready
  `/readyz` on a restart with a store, at 10,000 and 100,000 connections.

    python3 bench/state.py                  # 3 runs each, sizes 10,000 and 100,000
    python3 bench/state.py --runs 1 --sizes 10000

Everything runs on 127.0.0.1.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def restart_figures(n, rate):
    """Starts credwatch on `n` connections with a fresh store, lets it probe every connection
    once, stops it with SIGTERM, then starts it again and times the way to a ready /readyz."""
    interval = max(1, round(n / rate))
    sim = bench.Simulator(n, 10, interval)
    state = os.path.join(sim.dir, "state")
    log = os.path.join(sim.dir, "stderr.log")
    try:
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        args = bench.PIN["client"] + [bench.BIN, "run", "--config", sim.config, "--listen", f"127.0.0.1:{port}",
                                      "--state-dir", state] + bench.THREADS
        with open(log, "a") as err:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        assert bench.wait_for(f"{base}/readyz", timeout=interval * 2 + 120), "not ready"
        time.sleep(3)  # the writer's last batch
        proc.terminate()
        proc.wait()
        files = [os.path.join(state, f) for f in os.listdir(state)]
        size = sum(os.path.getsize(f) for f in files)
        started = time.monotonic()
        with open(log, "a") as err:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        assert bench.wait_for(f"{base}/readyz", timeout=120), "not ready after the restart"
        ready = time.monotonic() - started
        proc.terminate()
        proc.wait()
        with open(log) as f:
            took = [int(m) for m in re.findall(r"took_ms=(\d+)", f.read())]
        return {
            "connections": n,
            "store_bytes": size,
            "bytes_per_connection": size / n,
            "load_ms": took[-1] if took else None,
            "ready_after_restart_s": ready,
        }
    finally:
        sim.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) >= 2:
        bench.PIN["server"] = ["taskset", "-c", "0"]
        bench.PIN["client"] = ["taskset", "-c", "1"]
        os.sched_setaffinity(0, {0})
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=bench.ROOT, check=True)
    cpu = {"without": [], "with": []}
    for run in range(args.runs):
        for label, state in [("without", ["--no-state"]), ("with", None)]:
            r = bench.bench_credwatch(1000, args.rate, args.window, scrapes=3, state=state)
            cpu[label].append(r["cpu_s_per_1000"])
            print(f"run {run + 1}, {label} the store: {r['cpu_s_per_1000']:.4f} CPU s per 1,000 probes", file=sys.stderr)
    sizes = []
    for n in map(int, args.sizes.split(",")):
        sizes.append(restart_figures(n, args.rate))
        print(json.dumps(sizes[-1]), file=sys.stderr)
    print("| run | without the store | with the store | ratio |")
    print("|---:|---:|---:|---:|")
    for i, (a, b) in enumerate(zip(cpu["without"], cpu["with"])):
        print(f"| {i + 1} | {a:.4f} | {b:.4f} | {b / a:.3f} |")
    mean = lambda xs: sum(xs) / len(xs)
    print(f"| mean | {mean(cpu['without']):.4f} | {mean(cpu['with']):.4f} | {mean(cpu['with']) / mean(cpu['without']):.3f} |")
    print()
    print("| connections | store on disk | per connection | load | start to ready, restarted |")
    print("|---:|---:|---:|---:|---:|")
    for s in sizes:
        print(f"| {s['connections']:,} | {s['store_bytes'] / 1024 / 1024:.1f} MiB | {s['bytes_per_connection']:.0f} B | "
              f"{s['load_ms']} ms | {s['ready_after_restart_s']:.2f} s |")


if __name__ == "__main__":
    main()

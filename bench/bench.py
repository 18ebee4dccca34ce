#!/usr/bin/env python3
"""credwatch's benchmark: credwatch at several fleet sizes, side by side with Prometheus's
blackbox_exporter and with wrk against the same simulator endpoint. See BENCHMARKS.md.

    python3 bench/bench.py                        # 1,000 / 10,000 / 100,000 connections
    python3 bench/bench.py --sizes 1000 --window 10

Needs the Debian packages prometheus-blackbox-exporter and wrk. Everything runs on 127.0.0.1.
"""
import argparse
import concurrent.futures
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "credwatch")
CERT = os.path.join(ROOT, "tests", "fixtures", "localhost.pem")
KEY = os.path.join(ROOT, "tests", "fixtures", "localhost.key")
CA = os.path.join(ROOT, "tests", "fixtures", "test-ca.pem")
TICK = os.sysconf("SC_CLK_TCK")
THREADS = []  # extra credwatch arguments, e.g. ["--threads", "1"] (set with --threads)
# CPU pinning (see --no-pin): the measured client on one CPU, the simulator on another, as
# they would be on separate machines; unpinned on 2 CPUs, each preempts the other.
PIN = {"client": [], "server": []}
INSECURE = ssl.create_default_context()
INSECURE.check_hostname = False
INSECURE.verify_mode = ssl.CERT_NONE


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU of a process so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def get(url, timeout=60):
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout, context=INSECURE) as response:
        body = response.read()
        return response.status, body, time.monotonic() - started


def wait_for(url, want=200, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(url, timeout=5)[0] == want:
                return True
        except Exception:
            pass
        time.sleep(0.05)
    return False


class Simulator:
    """`credwatch simulate --scale N` in the background, with its generated configuration."""

    def __init__(self, n, sites, interval, tls=False, close=False):
        self.dir = tempfile.mkdtemp(prefix="credwatch-bench-")
        port = free_port()
        scheme = "https" if tls else "http"
        self.base = f"{scheme}://127.0.0.1:{port}"
        args = PIN["server"] + [BIN, "simulate", "--listen", f"127.0.0.1:{port}", "--scale", str(n), "--sites", str(sites),
                "--interval", f"{interval}s", "--write-config", self.dir, "--no-rate-limit"]
        if tls:
            args += ["--tls-cert", CERT, "--tls-key", KEY, "--ca-file", CA]
        if close:
            args += ["--close-connections"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.config = os.path.join(self.dir, "credwatch.toml")
        deadline = time.monotonic() + 600
        while not os.path.exists(self.config) or not wait_for(f"{self.base}/_sim/stats", timeout=1):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.1)
        time.sleep(0.5)  # the configuration file is complete once the simulator serves

    def probes(self):
        return json.loads(get(f"{self.base}/_sim/stats")[1])["myself"]

    def endpoint(self):
        return f"{self.base}/site-0/rest/api/2/myself"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        subprocess.run(["rm", "-rf", self.dir])


def lateness_quantiles(metrics):
    """p50 and p99 from credwatch_probe_lateness_seconds, interpolated within buckets."""
    buckets = []
    for line in metrics.splitlines():
        if line.startswith("credwatch_probe_lateness_seconds_bucket{le=\""):
            le = line.split('"')[1]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    result = []
    for q in (0.5, 0.99):
        rank, lower, below = q * total, 0.0, 0.0
        value = float("nan")
        for bound, count in buckets:
            if count >= rank:
                span = count - below
                upper = bound if bound != float("inf") else lower
                value = lower + (upper - lower) * ((rank - below) / span if span else 0)
                break
            lower, below = bound, count
        result.append(value)
    return result


def bench_credwatch(n, rate, window, tls=False, close=False, scrapes=20, state=None):
    """`state`: extra arguments for the state store; default a fresh --state-dir, as a
    daemon runs by default (with a store); ["--no-state"] to measure without one."""
    interval = max(1, round(n / rate))
    sim = Simulator(n, 10, interval, tls, close)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if state is None:
        state = ["--state-dir", os.path.join(sim.dir, "state")]
    started = time.monotonic()
    proc = subprocess.Popen(PIN["client"] + [BIN, "run", "--config", sim.config, "--listen", f"127.0.0.1:{port}", "--log-level", "error"] + THREADS + state,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(f"{base}/healthz", timeout=120), "credwatch did not serve"
        serving = time.monotonic() - started
        assert wait_for(f"{base}/readyz", timeout=interval * 2 + 120), "credwatch did not become ready"
        ready = time.monotonic() - started
        time.sleep(min(5, interval))
        cpu0, probes0, t0 = cpu_seconds(proc.pid), sim.probes(), time.monotonic()
        time.sleep(window)
        cpu1, probes1, t1 = cpu_seconds(proc.pid), sim.probes(), time.monotonic()
        steady = status_kb(proc.pid, "VmRSS")
        latencies = []
        for _ in range(scrapes):
            size, elapsed = scrape(f"{base}/metrics")
            latencies.append(elapsed)
        metrics = get(f"{base}/metrics", timeout=300)[1].decode()
        probes = probes1 - probes0
        p50, p99 = lateness_quantiles(metrics)
        latencies.sort()
        peak = status_kb(proc.pid, "VmHWM")
        return {
            "connections": n, "interval_s": interval, "tls": tls, "keep_alive": not close,
            "probes_per_s": probes / (t1 - t0),
            "cpu_s_per_1000": (cpu1 - cpu0) / probes * 1000 if probes else float("nan"),
            "rss_mib": steady / 1024, "rss_per_connection_kib": steady / n, "peak_rss_mib": peak / 1024,
            "metrics_median_ms": statistics.median(latencies) * 1000,
            "metrics_p99_ms": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] * 1000,
            "metrics_mib": size / 1024 / 1024, "scrapes": len(latencies),
            "lateness_p50_s": p50, "lateness_p99_s": p99,
            "serving_s": serving, "ready_s": ready,
        }
    finally:
        proc.terminate()
        proc.wait()
        sim.stop()


def scrape(url):
    """One scrape with curl, which reads 180 MiB far faster than urllib: (bytes, seconds)."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                          "--max-time", "300", url], check=True, capture_output=True, text=True).stdout
    size, seconds = out.split()
    return int(size), float(seconds)


def drive(url, rate, window, workers=32):
    """Requests `url` at `rate` per second for `window` seconds; returns the successes."""
    ok = [0]
    lock = threading.Lock()

    def one():
        try:
            status, body, _ = get(url, timeout=10)
            if status == 200 and b"probe_success 1" in body:
                with lock:
                    ok[0] += 1
        except Exception:
            pass

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        start = time.monotonic()
        for i in range(int(rate * window)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)
    return ok[0]


def bench_blackbox(rate, window, tls=False):
    sim = Simulator(10, 1, 10, tls)
    port = free_port()
    work = tempfile.mkdtemp(prefix="credwatch-blackbox-")
    tls_config = f"\n      tls_config:\n        ca_file: {CA}" if tls else ""
    with open(os.path.join(work, "blackbox.yml"), "w") as f:
        f.write(f"""modules:
  jira:
    prober: http
    timeout: 5s
    http:
      method: GET
      valid_status_codes: [200]
      no_follow_redirects: true
      preferred_ip_protocol: ip4
      headers:
        Accept: application/json
      authorization:
        type: Bearer
        credentials: scale-token-0{tls_config}
""")
    proc = subprocess.Popen(PIN["client"] + ["prometheus-blackbox-exporter", f"--config.file={work}/blackbox.yml",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/probe?module=jira&target={urllib.request.quote(sim.endpoint(), safe='')}"
        assert wait_for(url, timeout=30), "blackbox_exporter did not probe"
        drive(url, rate, 2)
        cpu0 = cpu_seconds(proc.pid)
        ok = drive(url, rate, window)
        cpu1 = cpu_seconds(proc.pid)
        return {"tls": tls, "probes": ok, "probes_per_s": ok / window,
                "cpu_s_per_1000": (cpu1 - cpu0) / ok * 1000 if ok else float("nan")}
    finally:
        proc.terminate()
        proc.wait()
        sim.stop()
        subprocess.run(["rm", "-rf", work])


def bench_wrk(duration, tls=False, close=False):
    sim = Simulator(10, 1, 10, tls)
    try:
        args = PIN["client"] + ["wrk", "-t1", "-c8", f"-d{duration}s", "-H", "Authorization: Bearer scale-token-0",
                "-H", "Accept: application/json"]
        if close:
            args += ["-H", "Connection: close"]
        proc = subprocess.Popen(args + [sim.endpoint()], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _, _, usage = os.wait4(proc.pid, 0)
        output = proc.stdout.read()
        requests = int(next(l for l in output.splitlines() if "requests in" in l).split()[0])
        cpu = usage.ru_utime + usage.ru_stime
        return {"tls": tls, "keep_alive": not close, "requests": requests, "requests_per_s": requests / duration,
                "cpu_s_per_1000": cpu / requests * 1000}
    finally:
        sim.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--rate", type=int, default=1000, help="probes per second (fixed across sizes)")
    parser.add_argument("--window", type=int, default=30, help="seconds of measurement per run")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--threads", type=int, help="credwatch --threads (runtime worker threads)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the measured client to CPU 1 and the simulator (and this script) to CPU 0")
    args = parser.parse_args()
    if not args.no_pin and len(os.sched_getaffinity(0)) >= 2:
        PIN["server"] = ["taskset", "-c", "0"]
        PIN["client"] = ["taskset", "-c", "1"]
        os.sched_setaffinity(0, {0})
    if args.threads is not None:
        THREADS.extend(["--threads", str(args.threads)])
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)

    pinning = "client on CPU 1, simulator on CPU 0" if PIN["client"] else "not pinned"
    results = {"machine": f"{os.cpu_count()} CPUs, {os.uname().release}, {pinning}", "rate": args.rate, "credwatch": [], "https": [],
               "blackbox": [], "wrk": []}
    for n in map(int, args.sizes.split(",")):
        print(f"credwatch, {n} connections ...", file=sys.stderr)
        results["credwatch"].append(bench_credwatch(n, args.rate, args.window, scrapes=20 if n <= 10_000 else 3))
        print(json.dumps(results["credwatch"][-1]), file=sys.stderr)
    for tls, close in [(True, False), (True, True)]:
        print(f"credwatch over HTTPS, keep-alive {not close} ...", file=sys.stderr)
        results["https"].append(bench_credwatch(1000, args.rate, args.window, tls, close, scrapes=3))
    for tls in (False, True):
        print(f"blackbox_exporter, tls {tls} ...", file=sys.stderr)
        results["blackbox"].append(bench_blackbox(args.rate, args.window, tls))
    for tls, close in [(False, False), (True, False), (True, True)]:
        print(f"wrk, tls {tls}, keep-alive {not close} ...", file=sys.stderr)
        results["wrk"].append(bench_wrk(min(args.window, 15), tls, close))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    report(results)


def report(r):
    print(f"Probe rate {r['rate']}/s; {r['machine']}\n")
    print("| connections | probes/s | CPU s / 1000 probes | RSS | RSS / connection | peak RSS (with scrapes) | /metrics median | p99 | size | lateness p50 | p99 | serving | ready |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in r["credwatch"]:
        print(f"| {c['connections']:,} | {c['probes_per_s']:.0f} | {c['cpu_s_per_1000']:.3f} | {c['rss_mib']:.0f} MiB | "
              f"{c['rss_per_connection_kib']:.1f} KiB | {c['peak_rss_mib']:.0f} MiB | {c['metrics_median_ms']:.0f} ms | {c['metrics_p99_ms']:.0f} ms | "
              f"{c['metrics_mib']:.1f} MiB | {c['lateness_p50_s']:.3f} s | {c['lateness_p99_s']:.3f} s | {c['serving_s']:.2f} s | {c['ready_s']:.1f} s |")
    bb = {b["tls"]: b for b in r["blackbox"]}
    wrk = {(w["tls"], w["keep_alive"]): w for w in r["wrk"]}
    http = next((c for c in r["credwatch"] if c["connections"] == 1000), r["credwatch"][0])
    print("\n| CPU s per 1,000 probes | credwatch | blackbox_exporter | wrk | credwatch / blackbox | credwatch / wrk |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [("HTTP, keep-alive", http, bb.get(False), wrk.get((False, True)))]
    for c in r["https"]:
        label = "HTTPS, keep-alive (warm)" if c["keep_alive"] else "HTTPS, a handshake per probe (cold)"
        rows.append((label, c, bb.get(True), wrk.get((True, c["keep_alive"]))))
    for label, c, b, w in rows:
        ratio_b = c["cpu_s_per_1000"] / b["cpu_s_per_1000"] if b else float("nan")
        ratio_w = c["cpu_s_per_1000"] / w["cpu_s_per_1000"] if w else float("nan")
        print(f"| {label} | {c['cpu_s_per_1000']:.3f} | {b['cpu_s_per_1000'] if b else float('nan'):.3f} | "
              f"{w['cpu_s_per_1000'] if w else float('nan'):.3f} | {ratio_b:.2f}x | {ratio_w:.2f}x |")
    print("\nblackbox_exporter makes a new connection (and over HTTPS a new handshake) for every probe; it is compared with credwatch's warm and cold rows alike.")


if __name__ == "__main__":
    main()

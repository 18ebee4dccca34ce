#!/usr/bin/env bash
# Soak: credwatch against the simulator with many connections at a high probe rate, sampling
# RSS, open file descriptors and live tokio tasks over time. Not part of the default test run.
#
#   bench/soak.sh                       # 10,000 connections, every 10 s (1,000 probes/s), 10 min
#   CONNECTIONS=2000 SECONDS_TOTAL=120 bench/soak.sh
#
# Prints a Markdown table and the growth after warm-up (the mean of the samples in the third
# minute against the mean of the last two); each must stay under 5%.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-10000}
SITES=${SITES:-10}
INTERVAL=${INTERVAL:-10s}
SECONDS_TOTAL=${SECONDS_TOTAL:-600}
SAMPLE_EVERY=${SAMPLE_EVERY:-30}
WARMUP=${WARMUP:-120}

cargo build --release --locked --quiet
bin=target/release/credwatch
work=$(mktemp -d)
sim_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { kill "${daemon:-}" "${sim:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin" simulate --listen "127.0.0.1:$sim_port" --scale "$CONNECTIONS" --sites "$SITES" \
  --interval "$INTERVAL" --write-config "$work" > "$work/sim.log" 2>&1 &
sim=$!
for _ in $(seq 200); do [ -f "$work/credwatch.toml" ] && break; sleep 0.1; done
"$bin" run --config "$work/credwatch.toml" --listen "127.0.0.1:$port" --log-level error > "$work/run.log" 2>&1 &
daemon=$!

metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
probes() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^credwatch_probes_total\{/ { s += $2 } END { printf "%d", s }'; }

echo "soak: $CONNECTIONS connections over $SITES sites, interval $INTERVAL, ${SECONDS_TOTAL}s, sampling every ${SAMPLE_EVERY}s"
echo
echo "| t (s) | RSS (MiB) | open fds | tasks | probes/s |"
echo "|---:|---:|---:|---:|---:|"
samples="$work/samples"
: > "$samples"
start=$(date +%s)
last_probes=0
last_t=0
while true; do
  sleep "$SAMPLE_EVERY"
  now=$(( $(date +%s) - start ))
  kill -0 "$daemon" 2>/dev/null || { echo "credwatch exited"; cat "$work/run.log"; exit 1; }
  rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status")
  fds=$(ls "/proc/$daemon/fd" | wc -l)
  tasks=$(metric credwatch_runtime_alive_tasks)
  total=$(probes)
  rate=$(( (total - last_probes) / (now - last_t) ))
  last_probes=$total; last_t=$now
  printf '| %d | %.1f | %d | %d | %d |\n' "$now" "$(echo "$rss_kb / 1024" | bc -l)" "$fds" "$tasks" "$rate"
  echo "$now $rss_kb $fds $tasks" >> "$samples"
  [ "$now" -ge "$SECONDS_TOTAL" ] && break
done

python3 - "$samples" "$WARMUP" <<'PY'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
warmup = float(sys.argv[2])
base = [r for r in rows if warmup <= r[0] < warmup + 60] or [r for r in rows if r[0] >= warmup][:2]
end = rows[-2:]
ok = True
print()
for i, name in [(1, "RSS"), (2, "open fds"), (3, "tasks")]:
    b = sum(r[i] for r in base) / len(base)
    e = sum(r[i] for r in end) / len(end)
    growth = (e - b) / b * 100 if b else 0.0
    ok &= growth < 5.0
    print(f"{name}: {b:.0f} after warm-up, {e:.0f} at the end: growth {growth:+.2f}%")
print("PASS: growth after warm-up under 5%" if ok else "FAIL: growth after warm-up of 5% or more")
sys.exit(0 if ok else 1)
PY

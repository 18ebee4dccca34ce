#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) under libFuzzer for a set time each, starting
# from the kept inputs (fuzz/regressions/<target>/) plus the corpus of earlier runs
# (fuzz/corpus/<target>/, not committed). A crash is copied to fuzz/regressions/<target>/, where
# tests/fuzz_regressions.rs replays it on every test run; fix it, then commit it.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     default 600 s, every target
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). Prints one line per
# target: executions, corpus size, coverage, and whether it crashed. Record the hours and what
# was found in FUZZING.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
# Built once, then the binaries run directly: an edit to the tree meanwhile does not rebuild.
cargo +nightly fuzz build -O >/dev/null
bin=target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="artifacts/$target/run.log"
  started=$(date +%s)
  set +e
  "$bin/$target" "corpus/$target" "regressions/$target" \
    -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 >"$log" 2>&1
  code=$?
  set -e
  took=$(( $(date +%s) - started ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  corpus=$(find "corpus/$target" -type f | wc -l)
  crashes=$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  for artifact in $(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \)); do
    cp "$artifact" "regressions/$target/"
  done
  verdict=clean
  if [ "$code" -ne 0 ] || [ "$crashes" -gt 0 ]; then verdict="FOUND $crashes (exit $code, see $log)"; status=1; fi
  printf '%-12s %5ss  %10s execs  cov %6s  corpus %5s  %s\n' "$target" "$took" "$execs" "$cov" "$corpus" "$verdict"
done
exit $status

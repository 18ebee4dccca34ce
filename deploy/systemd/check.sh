#!/usr/bin/env bash
# Checks deploy/systemd/credwatch.service:
#   1. `systemd-analyze verify` is clean (exit 0, and no message about the unit);
#   2. `systemd-analyze security --offline=true` rates its overall exposure at most
#      $MAX_EXPOSURE (default 2.0);
#   3. it keeps the state store in StateDirectory=credwatch, validates the configuration
#      before the SIGHUP of a reload (so that a broken one fails `systemctl reload`), and
#      has a watchdog.
# Exits 0 only when all pass. Needs systemd-analyze (systemd >= 250 for --offline); no
# running systemd is needed.
#
# Why a copy: `systemd-analyze verify` fails when ExecStart's binary does not exist
# ("Command /usr/bin/credwatch is not executable"), and the binary is not installed where
# this runs. `--root=DIR` with a placeholder DIR/usr/bin/credwatch does not work with
# systemd 252: under --root every unit the service pulls in (network-online.target,
# sysinit.target, ...) and /bin/kill of ExecReload must exist in DIR as well. So the unit is
# copied, unchanged but for ExecStart's path, into a temporary directory, ExecStart is
# (and ExecReload's validate) pointed at a placeholder executable in that directory, and both checks run on the copy
# (same file name, so the unit name stays credwatch.service).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
unit="$here/credwatch.service"
max="${MAX_EXPOSURE:-2.0}"

command -v systemd-analyze >/dev/null 2>&1 || {
  echo "FAIL: systemd-analyze not found (install systemd)" >&2
  exit 1
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/usr/bin"
printf '#!/bin/sh\nexit 0\n' >"$tmp/usr/bin/credwatch"
chmod 0755 "$tmp/usr/bin/credwatch"
sed -E "s|^(Exec[A-Za-z]+=)/usr/bin/credwatch |\1$tmp/usr/bin/credwatch |" "$unit" >"$tmp/credwatch.service"
if ! grep -q "^ExecStart=$tmp/usr/bin/credwatch " "$tmp/credwatch.service"; then
  echo "FAIL: no 'ExecStart=/usr/bin/credwatch ...' line to point at the placeholder" >&2
  exit 1
fi

status=0

# The daemon keeps its state in $STATE_DIRECTORY: without it, every restart would blank the
# verdicts and grant new failed logins.
if grep -q '^StateDirectory=credwatch$' "$unit"; then
  echo "ok: StateDirectory=credwatch"
else
  echo "FAIL: the unit has no StateDirectory=credwatch (the state store's directory)"
  status=1
fi

# systemd runs ExecReload= lines in order and fails the reload at the first that fails: the
# validation must come before the signal.
reloads="$(grep '^ExecReload=' "$unit" || true)"
if [ "$(sed -n 1p <<<"$reloads")" = "ExecReload=/usr/bin/credwatch validate --quiet --config /etc/credwatch/credwatch.toml" ] &&
  [ "$(sed -n 2p <<<"$reloads")" = 'ExecReload=/bin/kill -HUP $MAINPID' ] &&
  grep -q '^ExecStart=/usr/bin/credwatch run --config /etc/credwatch/credwatch.toml ' "$unit"; then
  echo "ok: a reload validates the configuration ExecStart uses, then sends SIGHUP"
else
  echo "FAIL: ExecReload= must run 'credwatch validate --quiet --config <ExecStart's>' before the SIGHUP"
  status=1
fi
if grep -qE '^WatchdogSec=[1-9]' "$unit"; then
  echo "ok: $(grep '^WatchdogSec=' "$unit")"
else
  echo "FAIL: no WatchdogSec= (credwatch sends WATCHDOG=1 while its runtime is healthy)"
  status=1
fi

echo "== systemd-analyze verify credwatch.service ($(systemd-analyze --version | head -n1))"
set +e
verify_out="$(systemd-analyze verify "$tmp/credwatch.service" 2>&1)"
verify_rc=$?
set -e
# The copy has the same lines as the original: name the original in the messages.
verify_out="${verify_out//$tmp\/credwatch.service/$unit}"
if [ -n "$verify_out" ]; then
  printf '%s\n' "$verify_out"
fi
# verify exits 0 after warnings such as "Unknown key": any message about the unit fails.
if [ "$verify_rc" -ne 0 ] || grep -q 'credwatch' <<<"$verify_out"; then
  echo "FAIL: systemd-analyze verify reported problems (exit $verify_rc)"
  status=1
else
  echo "ok: systemd-analyze verify is clean"
fi

echo "== systemd-analyze security --offline=true credwatch.service"
set +e
security_out="$(systemd-analyze security --offline=true "$tmp/credwatch.service" 2>&1)"
security_rc=$?
set -e
# Only the findings that cost something, then the verdict.
grep -E '^✗' <<<"$security_out" || true
line="$(grep -E 'Overall exposure level for credwatch\.service:' <<<"$security_out" || true)"
exposure="$(sed -nE 's/.*Overall exposure level for credwatch\.service: ([0-9]+(\.[0-9]+)?).*/\1/p' <<<"$line")"
if [ -z "$exposure" ]; then
  printf '%s\n' "$security_out"
  echo "FAIL: could not read the overall exposure (systemd-analyze exit $security_rc)"
  status=1
elif awk -v e="$exposure" -v m="$max" 'BEGIN { exit !(e > m) }'; then
  echo "$line"
  echo "FAIL: exposure $exposure is above $max"
  status=1
else
  echo "$line"
  echo "ok: exposure $exposure (at most $max)"
fi

exit "$status"

#!/usr/bin/env bash
# Checks deploy/alertmanager/alertmanager.yml with Debian's amtool (package
# prometheus-alertmanager): the configuration loads, and each alert below reaches the receiver
# it should. Exits 0 only when all pass.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
config="$here/alertmanager.yml"

command -v amtool >/dev/null 2>&1 || {
  echo "FAIL: amtool not found (install prometheus-alertmanager)" >&2
  exit 1
}

echo "== amtool check-config alertmanager.yml ($(amtool --version 2>&1 | head -n1))"
amtool check-config "$config"

status=0
# receiver, then the alert's labels.
while read -r receiver labels; do
  [ -z "$receiver" ] && continue
  # shellcheck disable=SC2086 # the labels are separate arguments
  if got="$(amtool config routes test --config.file="$config" --verify.receivers="$receiver" $labels 2>/dev/null)"; then
    echo "ok: $labels -> $got"
  else
    echo "FAIL: $labels -> $got (expected $receiver)"
    status=1
  fi
done <<'TESTS'
platform-pager alertname=CredwatchCredentialRejected severity=critical team=platform connection=c job=credwatch
platform-tickets alertname=CredwatchTokenExpiringSoon severity=warning team=platform connection=c job=credwatch
data-pager alertname=CredwatchCredentialLocked severity=critical team=data connection=c job=credwatch
data-tickets alertname=CredwatchProbeFailing severity=warning team=data connection=c job=credwatch
credwatch-default alertname=CredwatchCredentialRejected severity=critical connection=c job=credwatch
credwatch-default alertname=CredwatchTokenNeverExpires severity=info connection=c job=credwatch
credwatch-operators-pager alertname=CredwatchDown severity=critical job=credwatch instance=cw-0:9847
credwatch-operators-pager alertname=CredwatchShardMissing severity=critical job=credwatch namespace=a
credwatch-operators-pager alertname=CredwatchReplicaMissing severity=critical job=credwatch namespace=a shard=0
credwatch-operators-pager alertname=CredwatchAllReplicasDown severity=critical job=credwatch namespace=a
credwatch-operators-pager alertname=CredwatchReplicaCountMismatch severity=critical job=credwatch namespace=a
credwatch-operators alertname=CredwatchConfigReloadFailed severity=warning job=credwatch instance=cw-0:9847
credwatch-operators alertname=CredwatchNoConnections severity=warning job=credwatch
TESTS
exit $status

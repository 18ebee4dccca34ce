#!/usr/bin/env bash
# The monitoring mixin's checks (run by .ci/run):
#   1. the shipped rules, PrometheusRule, dashboard and its ConfigMap are what the mixin
#      generates (python3 deploy/generate.py --check);
#   2. the generated rules pass promtool check rules and their unit tests;
#   3. generated again with another selector and other thresholds, the rules use them
#      (promtool check rules, and a unit test that fires only with the new thresholds) and so
#      does the dashboard.
# Needs jsonnet, Python 3 with PyYAML, and promtool.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== jsonnet $(jsonnet --version 2>&1 | awk '{print $NF}'): generated files are current"
python3 deploy/generate.py --check

echo "== promtool on the generated rules"
promtool check rules deploy/prometheus/credwatch-rules.yml
(cd deploy/prometheus && promtool test rules credwatch-rules.test.yml credwatch-rules.replicas.test.yml)

echo "== a changed configuration: selector job=\"jira-creds\", warning 30 days, critical 7"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 deploy/generate.py --out "$out" \
  --config '{ credwatchSelector: "job=\"jira-creds\"", expiryWarningDays: 30, expiryCriticalDays: 7 }'
promtool check rules "$out/credwatch-rules.yml"
grep -q '30 \* 86400' "$out/credwatch-rules.yml" || { echo "the warning threshold did not change"; exit 1; }
grep -q 'job="jira-creds"' "$out/credwatch-rules.yml" || { echo "the selector did not change"; exit 1; }
if grep -q 'job="credwatch"' "$out/credwatch-rules.yml"; then echo "the default selector is still used"; exit 1; fi
grep -q 'job=\\"jira-creds\\"' "$out/credwatch.json" || { echo "the dashboard ignores the selector"; exit 1; }
cp mixin/tests/variant.test.yml "$out/"
(cd "$out" && promtool test rules variant.test.yml)
echo "== durations scaled for end-to-end tests (alertDurationScale 0.01): 15m becomes 9s"
python3 deploy/generate.py --out "$out/scaled" --config '{ alertDurationScale: 0.01 }' >/dev/null
promtool check rules "$out/scaled/credwatch-rules.yml"
grep -q 'for: 9s' "$out/scaled/credwatch-rules.yml" || { echo "the durations did not scale"; exit 1; }
echo "== the mixin's checks passed"

#!/usr/bin/env bash
# Checks the kustomize base in deploy/kubernetes/:
#   1. kubernetes-validate --strict on every manifest of a built-in kind (installed with pip
#      when missing). CRD kinds (ServiceMonitor, PrometheusRule of monitoring.coreos.com) are
#      skipped, and said so: kubernetes-validate has schemas for built-in kinds only. Their
#      content is checked otherwise: generate.py --check proves the PrometheusRule's groups are
#      those of deploy/prometheus/credwatch-rules.yml (which promtool checks and unit-tests),
#      and promtool checks the groups here too when it is installed; the ServiceMonitor's
#      selector, port and job label are checked against service.yaml.
#   2. python3 deploy/generate.py --check: the generated files are up to date; the Deployment
#      meets the restricted Pod Security Standard (the checks of that profile, in Python).
#   3. kustomization.yaml: every file it lists exists and every manifest in the directory is
#      listed (secret-example.yaml excepted, on purpose); then `kubectl kustomize` (or
#      `kustomize build`) builds the base when one of them is installed.
# Exits non-zero on any failure. Needs python3 with PyYAML.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
deploy="$(dirname "$here")"
cd "$here"
status=0
fail() {
  echo "FAIL: $*"
  status=1
}

echo "== kubernetes-validate"
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "installing kubernetes-validate with pip"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate >/dev/null 2>&1 ||
    pip install --quiet --disable-pip-version-check --user kubernetes-validate >/dev/null 2>&1
  hash -r
  if ! command -v kubernetes-validate >/dev/null 2>&1 && [ -x "$HOME/.local/bin/kubernetes-validate" ]; then
    PATH="$HOME/.local/bin:$PATH"
  fi
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  fail "kubernetes-validate is not installed and pip could not install it"
else
  echo "kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -n1)"
  for file in *.yaml; do
    [ "$file" = kustomization.yaml ] && continue
    # "crd" when any document of the file is of a monitoring.coreos.com kind.
    kind="$(python3 - "$file" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")) if d]
crd = [d.get("kind") for d in docs if str(d.get("apiVersion", "")).startswith("monitoring.coreos.com/")]
print("crd " + ",".join(crd) if crd else "builtin")
EOF
)" || { fail "$file: not readable YAML"; continue; }
    case "$kind" in
      crd*PrometheusRule*)
        echo "skip: $file (PrometheusRule, a CRD kind: kubernetes-validate has no schema for" \
          "CRDs; its groups are checked by generate.py --check and promtool below)"
        ;;
      crd*)
        echo "skip: $file (${kind#crd }, a CRD kind: kubernetes-validate has no schema for" \
          "CRDs; its selector and port are checked against service.yaml below)"
        ;;
      *)
        if out="$(kubernetes-validate --strict "$file" 2>&1)"; then
          echo "$out"
        else
          echo "$out"
          fail "kubernetes-validate $file"
        fi
        ;;
    esac
  done
fi

echo "== deployment.yaml against the restricted Pod Security Standard"
python3 - <<'EOF' || fail "deployment.yaml does not meet the restricted profile"
import sys, yaml
d = yaml.safe_load(open("deployment.yaml", encoding="utf-8"))
pod = d["spec"]["template"]["spec"]
psc = pod.get("securityContext", {})
problems = []
allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
for volume in pod.get("volumes", []):
    kinds = set(volume) - {"name"}
    if not kinds <= allowed_volumes:
        problems.append(f"volume {volume['name']}: {kinds - allowed_volumes} not allowed")
for c in pod.get("initContainers", []) + pod["containers"]:
    sc = c.get("securityContext", {})
    name = c["name"]
    if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
        problems.append(f"{name}: runAsNonRoot must be true")
    if sc.get("runAsUser", psc.get("runAsUser")) == 0:
        problems.append(f"{name}: runAsUser 0")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{name}: allowPrivilegeEscalation must be false")
    if sc.get("privileged"):
        problems.append(f"{name}: privileged")
    caps = sc.get("capabilities", {})
    if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
        problems.append(f"{name}: capabilities must drop ALL (and add at most NET_BIND_SERVICE)")
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name}: readOnlyRootFilesystem should be true")
    if "ports" in c and any(p.get("hostPort") for p in c["ports"]):
        problems.append(f"{name}: hostPort")
for key in ("hostNetwork", "hostPID", "hostIPC"):
    if pod.get(key):
        problems.append(f"pod: {key}")
for problem in problems:
    print(problem)
if not problems:
    print("ok: non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root")
sys.exit(1 if problems else 0)
EOF

echo "== servicemonitor.yaml against service.yaml"
python3 - <<'EOF' || fail "servicemonitor.yaml does not select service.yaml's port"
import sys, yaml
sm = yaml.safe_load(open("servicemonitor.yaml", encoding="utf-8"))
svc = yaml.safe_load(open("service.yaml", encoding="utf-8"))
problems = []
if sm.get("apiVersion") != "monitoring.coreos.com/v1" or sm.get("kind") != "ServiceMonitor":
    problems.append("not a monitoring.coreos.com/v1 ServiceMonitor")
wanted = sm["spec"]["selector"]["matchLabels"]
labels = svc["metadata"].get("labels", {})
if any(labels.get(k) != v for k, v in wanted.items()):
    problems.append(f"selector {wanted} does not match the Service's labels {labels}")
job = sm["spec"].get("jobLabel")
if job and labels.get(job) != "credwatch":
    problems.append(f"jobLabel {job} does not give job=\"credwatch\" (the meta alerts need it)")
ports = {p.get("name") for p in svc["spec"]["ports"]}
for endpoint in sm["spec"]["endpoints"]:
    if endpoint.get("port") not in ports:
        problems.append(f"endpoint port {endpoint.get('port')!r} is not a Service port {sorted(ports)}")
for problem in problems:
    print(problem)
if not problems:
    print("ok: the ServiceMonitor selects the Service and its http-metrics port, job=\"credwatch\"")
sys.exit(1 if problems else 0)
EOF

echo "== generate.py --check"
python3 "$deploy/generate.py" --check || fail "generated files are stale (run python3 deploy/generate.py)"

if command -v promtool >/dev/null 2>&1; then
  echo "== promtool check rules (the PrometheusRule's spec.groups)"
  tmp="$(mktemp -d)"
  python3 - prometheusrule.yaml "$tmp/rules.yml" <<'EOF'
import sys, yaml
rule = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[2], "w", encoding="utf-8"), sort_keys=False)
EOF
  promtool check rules "$tmp/rules.yml" || fail "promtool check rules on prometheusrule.yaml"
  rm -rf "$tmp"
else
  echo "== promtool not installed: the PrometheusRule is checked by generate.py --check only"
fi

echo "== kustomization.yaml"
python3 - <<'EOF' || fail "kustomization.yaml does not match the directory"
import pathlib, sys, yaml
# Files that are deliberately not part of the base.
NOT_LISTED = {
    "secret-example.yaml": "placeholder tokens; applying it with the base would overwrite the real Secret",
}
k = yaml.safe_load(open("kustomization.yaml", encoding="utf-8"))
listed = list(k.get("resources") or [])
ok = True
for name in listed:
    if not pathlib.Path(name).exists():
        print(f"listed but missing: {name}")
        ok = False
manifests = sorted(p.name for p in pathlib.Path(".").glob("*.y*ml") if p.name != "kustomization.yaml")
for name in manifests:
    if name in NOT_LISTED:
        if name in listed:
            print(f"{name} must not be listed: {NOT_LISTED[name]}")
            ok = False
        else:
            print(f"not listed, on purpose: {name} ({NOT_LISTED[name]})")
    elif name not in listed:
        print(f"not listed in kustomization.yaml: {name}")
        ok = False
if ok:
    print(f"ok: {len(listed)} resources listed, all present; every manifest accounted for")
sys.exit(0 if ok else 1)
EOF
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  builder=(kubectl kustomize .)
elif command -v kustomize >/dev/null 2>&1; then
  builder=(kustomize build .)
else
  builder=()
fi
if [ ${#builder[@]} -gt 0 ]; then
  if out="$("${builder[@]}" 2>&1)"; then
    echo "ok: ${builder[*]} builds $(grep -c '^kind:' <<<"$out") objects:" \
      "$(grep '^kind:' <<<"$out" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
  else
    echo "$out"
    fail "${builder[*]}"
  fi
else
  echo "neither kubectl nor kustomize is installed: the build is not tried (the listing check above stands in)"
fi

echo "== the sharded overlay (../kubernetes-sharded: a StatefulSet instead of the Deployment)"
if kubernetes-validate --strict ../kubernetes-sharded/statefulset.yaml >/dev/null 2>&1; then
  echo "ok: kubernetes-validate --strict ../kubernetes-sharded/statefulset.yaml"
else
  kubernetes-validate --strict ../kubernetes-sharded/statefulset.yaml || true
  fail "kubernetes-validate ../kubernetes-sharded/statefulset.yaml"
fi
if [ ${#builder[@]} -gt 0 ]; then
  if out="$(cd ../kubernetes-sharded && "${builder[@]}" 2>&1)" \
      && grep -q '^kind: StatefulSet' <<<"$out" && ! grep -q '^kind: Deployment' <<<"$out"; then
    echo "ok: the overlay builds with a StatefulSet and without the Deployment"
  else
    echo "$out"
    fail "the sharded overlay does not build as expected"
  fi
fi

if [ "$status" -eq 0 ]; then
  echo "== all Kubernetes checks passed"
else
  echo "== some Kubernetes checks FAILED"
fi
exit "$status"

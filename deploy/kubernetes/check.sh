#!/usr/bin/env bash
# Checks the kustomize base in deploy/kubernetes/:
#   1. kubernetes-validate --strict on every manifest of a built-in kind (installed with pip
#      when missing). CRD kinds (ServiceMonitor, PrometheusRule of monitoring.coreos.com) are
#      skipped, and said so: kubernetes-validate has schemas for built-in kinds only. Their
#      content is checked otherwise: generate.py --check proves the PrometheusRule's groups are
#      those of deploy/prometheus/credwatch-rules.yml (which promtool checks and unit-tests),
#      and promtool checks the groups here too when it is installed; the ServiceMonitor's
#      selector, port and job label are checked against service.yaml.
#   2. python3 deploy/generate.py --check: the generated files are up to date; the StatefulSet
#      meets the restricted Pod Security Standard (the checks of that profile, in Python),
#      keeps its state on a claim per replica, and is governed by the one headless Service
#      the ServiceMonitor selects (each pod scraped once).
#   3. kustomization.yaml: every file it lists exists and every manifest in the directory is
#      listed (secret-example.yaml excepted, on purpose); then `kubectl kustomize` (or
#      `kustomize build`) builds the base when one of them is installed.
#   4. The recommended app.kubernetes.io labels (version = Cargo.toml's) on every object, a
#      ServiceAccount with no token mounted, a NetworkPolicy (in: the metrics port from the
#      monitoring namespace; out: DNS and HTTPS), a PodMonitor alternative and the sharded
#      form's PodDisruptionBudget selecting the pods.
#   5. The sharded overlay: its patch, replica count and replacement, applied here as
#      kustomize applies them (patches, then replicas, then replacements), give a StatefulSet
#      of N replicas with CREDWATCH_SHARD=$(POD_NAME)/N from the one count, which
#      kubernetes-validate then checks; with kubectl or kustomize the real build must agree.
#   6. The HA forms: ../kubernetes-ha (a pair, CREDWATCH_REPLICA=$(POD_NAME)/2, on different
#      nodes) and ../kubernetes-sharded-ha (a StatefulSet per replica, credwatch-a and
#      credwatch-b, the shard from the ordinal, one Service): built with kubectl or kustomize,
#      their variables, selectors and Service checked, and each StatefulSet and
#      PodDisruptionBudget of the build checked by kubernetes-validate.
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

echo "== statefulset.yaml against the restricted Pod Security Standard"
python3 - <<'EOF' || fail "statefulset.yaml does not meet the restricted profile"
import sys, yaml
d = yaml.safe_load(open("statefulset.yaml", encoding="utf-8"))
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

echo "== the state on a claim per replica, one headless Service"
python3 - <<'EOF' || fail "statefulset.yaml and service.yaml do not keep one store per replica and one scrape per pod"
import pathlib, sys, yaml
sts = yaml.safe_load(open("statefulset.yaml", encoding="utf-8"))
svc = yaml.safe_load(open("service.yaml", encoding="utf-8"))
problems = []
if sts.get("kind") != "StatefulSet":
    problems.append("credwatch runs as a StatefulSet: never two pods of one identity (one state store each) at once")
claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}
container = sts["spec"]["template"]["spec"]["containers"][0]
mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
env = {e["name"]: e.get("value") for e in container.get("env", [])}
if "state" not in claims or "state" not in mounts:
    problems.append("no volumeClaimTemplate 'state' mounted in the container")
elif env.get("CREDWATCH_STATE_DIR") != mounts["state"]:
    problems.append(f"CREDWATCH_STATE_DIR {env.get('CREDWATCH_STATE_DIR')!r} is not the claim's mount {mounts['state']!r}")
if sts["spec"].get("serviceName") != svc["metadata"]["name"] or svc["spec"].get("clusterIP") != "None":
    problems.append("the StatefulSet's serviceName must be service.yaml's headless Service")
services = []
for path in sorted(pathlib.Path(".").glob("*.yaml")):
    for doc in yaml.safe_load_all(open(path, encoding="utf-8")):
        if doc and doc.get("kind") == "Service":
            services.append(f"{path}:{doc['metadata']['name']}")
if len(services) != 1:
    problems.append(f"exactly one Service must select the pods (else each is scraped once per Service): {services}")
for problem in problems:
    print(problem)
if not problems:
    print("ok: a StatefulSet with a state claim per replica, governed by the one headless Service")
sys.exit(1 if problems else 0)
EOF

echo "== recommended labels, the ServiceAccount, the NetworkPolicy, the PodMonitor"
python3 - <<'EOF' || fail "the Kubernetes conventions do not hold"
import pathlib, re, sys, yaml
version = re.search(r'^version = "([^"]+)"', open("../../Cargo.toml", encoding="utf-8").read(), re.M).group(1)
RECOMMENDED = {
    "app.kubernetes.io/name": "credwatch",
    "app.kubernetes.io/instance": "credwatch",
    "app.kubernetes.io/version": version,
    "app.kubernetes.io/component": "exporter",
    "app.kubernetes.io/part-of": "credwatch",
    "app.kubernetes.io/managed-by": "kustomize",
}
problems = []
docs = {}
for path in sorted(list(pathlib.Path(".").glob("*.yaml")) + list(pathlib.Path("../kubernetes-sharded").glob("*.yaml"))):
    if path.name == "kustomization.yaml":
        continue
    for doc in yaml.safe_load_all(open(path, encoding="utf-8")):
        if not doc:
            continue
        docs[(doc["kind"], str(path))] = doc
        labels = doc["metadata"].get("labels", {})
        missing = {k: v for k, v in RECOMMENDED.items() if labels.get(k) != v}
        if missing:
            problems.append(f"{path}: {doc['kind']} lacks the recommended labels {missing}")
        template = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels")
        if template is not None and any(template.get(k) != v for k, v in RECOMMENDED.items()):
            problems.append(f"{path}: the pod template lacks the recommended labels")
def one(kind):
    found = [d for (k, _), d in docs.items() if k == kind]
    if len(found) != 1:
        problems.append(f"expected one {kind}, found {len(found)}")
        return {}
    return found[0]
sa, sts, np, pm = one("ServiceAccount"), one("StatefulSet"), one("NetworkPolicy"), one("PodMonitor")
pod = sts.get("spec", {}).get("template", {}).get("spec", {})
if sa.get("automountServiceAccountToken") is not False or pod.get("automountServiceAccountToken") is not False:
    problems.append("no service account token may be mounted (ServiceAccount and pod)")
if pod.get("serviceAccountName") != sa.get("metadata", {}).get("name"):
    problems.append("the pod must run as the credwatch ServiceAccount")
pod_labels = sts["spec"]["template"]["metadata"]["labels"]
ports = {p["name"]: p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
if np:
    if any(pod_labels.get(k) != v for k, v in np["spec"]["podSelector"]["matchLabels"].items()):
        problems.append("the NetworkPolicy does not select credwatch's pods")
    if set(np["spec"]["policyTypes"]) != {"Ingress", "Egress"}:
        problems.append("the NetworkPolicy must restrict both directions")
    ingress_ports = {p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]}
    if ingress_ports != {"http-metrics"} or "http-metrics" not in ports:
        problems.append(f"ingress must be the metrics port alone: {ingress_ports}")
    if not all(rule.get("from") and all("namespaceSelector" in f for f in rule["from"]) for rule in np["spec"]["ingress"]):
        problems.append("ingress must come from the monitoring namespace only")
    egress_ports = {(p["port"], p["protocol"]) for rule in np["spec"]["egress"] for p in rule["ports"]}
    if egress_ports != {(53, "UDP"), (53, "TCP"), (443, "TCP")}:
        problems.append(f"egress must be DNS and HTTPS only: {egress_ports}")
if pm:
    if any(pod_labels.get(k) != v for k, v in pm["spec"]["selector"]["matchLabels"].items()):
        problems.append("the PodMonitor does not select credwatch's pods")
    for endpoint in pm["spec"]["podMetricsEndpoints"]:
        if endpoint["port"] not in ports:
            problems.append(f"the PodMonitor's port {endpoint['port']} is not a container port {sorted(ports)}")
pdb = one("PodDisruptionBudget")
if pdb and pdb["spec"].get("maxUnavailable") != 1:
    problems.append("the sharded PodDisruptionBudget lets one shard go at a time")
for problem in problems:
    print(problem)
if not problems:
    print(f"ok: recommended labels (version {version}) on every object, no token mounted, NetworkPolicy in: metrics from monitoring, out: DNS and HTTPS; PodMonitor and PDB select the pods")
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
    "podmonitor.yaml": "an alternative to servicemonitor.yaml, for a Prometheus that selects PodMonitors: use one of the two",
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

echo "== the sharded overlay (../kubernetes-sharded: the base with the shard count set)"
sharded="$(mktemp -d)"
python3 - "$sharded/statefulset.yaml" <<'EOF' || fail "the sharded overlay does not give CREDWATCH_SHARD=\$(POD_NAME)/N from its one count"
# Applies the overlay's patches, replicas and replacements to the base's StatefulSet in
# kustomize's order (PatchTransformer, ReplicaCountTransformer, ReplacementTransformer).
# Only what the overlay uses is supported: JSON-patch "add" at a list's end, one replica
# count, and a replacement of one field into a delimited part of another.
import re, sys, yaml
k = yaml.safe_load(open("../kubernetes-sharded/kustomization.yaml", encoding="utf-8"))
sts = yaml.safe_load(open("statefulset.yaml", encoding="utf-8"))
problems = []
if (k.get("resources") or [None])[0] != "../kubernetes" or any(
    r.startswith("..") for r in k["resources"][1:]
):
    problems.append(f"the overlay's resources must be the base and files of its own, got {k.get('resources')}")

def walk(node, path):
    for part in path:
        m = re.fullmatch(r"\[(\w+)=(.+)\]", part)
        if m:
            node = next(item for item in node if item.get(m.group(1)) == m.group(2))
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node

for patch in k.get("patches", []):
    if patch.get("target", {}).get("kind") != "StatefulSet":
        problems.append(f"unexpected patch target {patch.get('target')}")
        continue
    for op in yaml.safe_load(patch["patch"]):
        parts = op["path"].strip("/").split("/")
        if op["op"] != "add" or parts[-1] != "-":
            problems.append(f"unsupported patch op {op}")
            continue
        walk(sts, parts[:-1]).append(op["value"])
counts = {r["name"]: r["count"] for r in k.get("replicas", [])}
if list(counts) != ["credwatch"]:
    problems.append(f"the shard count is set once, in replicas: for credwatch: {counts}")
else:
    sts["spec"]["replicas"] = counts["credwatch"]
for replacement in k.get("replacements", []):
    source = walk(sts, replacement["source"]["fieldPath"].split("."))
    for target in replacement["targets"]:
        for field in target["fieldPaths"]:
            parts = re.findall(r"\[[^\]]+\]|[^.\[\]]+", field)
            parent, leaf = walk(sts, parts[:-1]), parts[-1]
            options = target.get("options", {})
            if "delimiter" in options:
                pieces = parent[leaf].split(options["delimiter"])
                pieces[options.get("index", 0)] = str(source)
                parent[leaf] = options["delimiter"].join(pieces)
            else:
                parent[leaf] = source
env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
n = sts["spec"]["replicas"]
if env.get("CREDWATCH_SHARD") != f"$(POD_NAME)/{n}":
    problems.append(f"CREDWATCH_SHARD is {env.get('CREDWATCH_SHARD')!r}, expected '$(POD_NAME)/{n}'")
if "POD_NAME" not in env:
    problems.append("POD_NAME is not set from metadata.name")
for problem in problems:
    print(problem)
if not problems:
    yaml.safe_dump(sts, open(sys.argv[1], "w", encoding="utf-8"), sort_keys=False)
    print(f"ok: {n} replicas, CREDWATCH_SHARD=$(POD_NAME)/{n}, from the one count in kustomization.yaml")
sys.exit(1 if problems else 0)
EOF
if [ -s "$sharded/statefulset.yaml" ]; then
  if kubernetes-validate --strict "$sharded/statefulset.yaml" >/dev/null 2>&1; then
    echo "ok: kubernetes-validate --strict on the sharded StatefulSet"
  else
    kubernetes-validate --strict "$sharded/statefulset.yaml" || true
    fail "kubernetes-validate on the sharded StatefulSet"
  fi
fi
rm -rf "$sharded"
if kubernetes-validate --strict ../kubernetes-sharded/pdb.yaml >/dev/null 2>&1; then
  echo "ok: kubernetes-validate --strict ../kubernetes-sharded/pdb.yaml"
else
  kubernetes-validate --strict ../kubernetes-sharded/pdb.yaml || true
  fail "kubernetes-validate ../kubernetes-sharded/pdb.yaml"
fi
if [ ${#builder[@]} -gt 0 ]; then
  if out="$(cd ../kubernetes-sharded && "${builder[@]}" 2>&1)" \
      && grep -q 'value: $(POD_NAME)/3' <<<"$out" && [ "$(grep -c '^kind: Service$' <<<"$out")" -eq 1 ]; then
    echo "ok: the overlay builds with CREDWATCH_SHARD=\$(POD_NAME)/3 and one Service"
  else
    echo "$out"
    fail "the sharded overlay does not build as expected"
  fi
fi

echo "== the HA forms (../kubernetes-ha: a pair; ../kubernetes-sharded-ha: a pair per shard)"
if kubernetes-validate --strict ../kubernetes-ha/pdb.yaml >/dev/null 2>&1; then
  echo "ok: kubernetes-validate --strict ../kubernetes-ha/pdb.yaml"
else
  kubernetes-validate --strict ../kubernetes-ha/pdb.yaml || true
  fail "kubernetes-validate ../kubernetes-ha/pdb.yaml"
fi
if [ ${#builder[@]} -gt 0 ]; then
  for form in kubernetes-ha kubernetes-sharded-ha; do
    built="$(mktemp -d)"
    if ! (cd "../$form" && "${builder[@]}") >"$built/all.yaml" 2>"$built/err"; then
      cat "$built/err"
      fail "$form does not build"
      rm -rf "$built"
      continue
    fi
    # Each StatefulSet and PodDisruptionBudget of the build, validated; the replica and shard
    # variables, the selectors and the one Service checked.
    python3 - "$form" "$built" <<'EOF2' || fail "$form is not the HA form it should be"
import sys, yaml
form, out = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(f"{out}/all.yaml", encoding="utf-8")) if d]
problems = []
sets = [d for d in docs if d["kind"] == "StatefulSet"]
services = [d for d in docs if d["kind"] == "Service"]
if len(services) != 1:
    problems.append(f"one Service must select every pod (one job in Prometheus): {len(services)}")
def env_of(sts):
    return {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
if form == "kubernetes-ha":
    if len(sets) != 1:
        problems.append(f"one StatefulSet: {len(sets)}")
    else:
        n = sets[0]["spec"]["replicas"]
        env = env_of(sets[0])
        if n != 2 or env.get("CREDWATCH_REPLICA") != f"$(POD_NAME)/{n}" or "CREDWATCH_SHARD" in env:
            problems.append(f"a pair with CREDWATCH_REPLICA=$(POD_NAME)/2, got {n} and {env}")
        affinity = sets[0]["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
        if not affinity.get("requiredDuringSchedulingIgnoredDuringExecution"):
            problems.append("the pair must be kept on different nodes")
else:
    replicas = sorted(env_of(s).get("CREDWATCH_REPLICA") for s in sets)
    if replicas != ["0/2", "1/2"]:
        problems.append(f"two StatefulSets, replicas 0/2 and 1/2: {replicas}")
    shards = {s["spec"]["replicas"] for s in sets}
    for s in sets:
        if env_of(s).get("CREDWATCH_SHARD") != f"$(POD_NAME)/{s['spec']['replicas']}":
            problems.append(f"{s['metadata']['name']}: CREDWATCH_SHARD from the ordinal and the shard count")
        if s["spec"]["serviceName"] != services[0]["metadata"]["name"] if services else True:
            problems.append(f"{s['metadata']['name']}: governed by the one Service")
    if len(shards) != 1:
        problems.append(f"both replicas need the same shard count: {shards}")
    selectors = [s["spec"]["selector"]["matchLabels"] for s in sets]
    for s in sets:
        labels = s["spec"]["template"]["metadata"]["labels"]
        matched = [sel for sel in selectors if all(labels.get(k) == v for k, v in sel.items())]
        if len(matched) != 1:
            problems.append(f"{s['metadata']['name']}: its pods must be selected by its own StatefulSet alone")
for i, d in enumerate(d for d in docs if d["kind"] in ("StatefulSet", "PodDisruptionBudget")):
    yaml.safe_dump(d, open(f"{out}/validate-{i}.yaml", "w", encoding="utf-8"), sort_keys=False)
for problem in problems:
    print(problem)
if not problems:
    print(f"ok: {form} builds: " + ", ".join(f"{s['metadata']['name']} ({s['spec']['replicas']} pods)" for s in sets) + ", one Service")
sys.exit(1 if problems else 0)
EOF2
    for file in "$built"/validate-*.yaml; do
      [ -e "$file" ] || continue
      kubernetes-validate --strict "$file" >/dev/null 2>&1 || {
        kubernetes-validate --strict "$file" || true
        fail "kubernetes-validate on $form's $(grep -m1 '^kind:' "$file")"
      }
    done
    rm -rf "$built"
  done
else
  echo "neither kubectl nor kustomize is installed: the HA forms are not built"
fi

if [ "$status" -eq 0 ]; then
  echo "== all Kubernetes checks passed"
else
  echo "== some Kubernetes checks FAILED"
fi
exit "$status"

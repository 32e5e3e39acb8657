#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/kubernetes/ offline against the Kubernetes
# schemas that the `kubernetes-validate` Python package ships (strict: unknown fields are
# errors), for every Kubernetes version in K8S_VERSIONS.
#
# Each kustomization (the base and every overlay) is rendered with `kubectl kustomize` when
# kubectl is installed, and every object of the output is validated; without kubectl, every
# resource file the kustomizations list is validated as it is. A broken object must fail: the
# script first checks that the validator rejects a Deployment with a misspelt field.
#
# kubernetes-validate is installed by scripts/ensure-deps.sh. When `unshare --net` works (root),
# the validator runs without any network, to prove it needs none.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "check-manifests: $*"; }
fail() {
    echo "check-manifests: $*" >&2
    exit 1
}

K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.33.0}"
python3 -c 'import kubernetes_validate' 2>/dev/null ||
    fail "the Python package kubernetes-validate is missing: run scripts/ensure-deps.sh"

offline=()
if unshare --net true 2>/dev/null; then
    offline=(unshare --net)
fi
validate() {
    local version="$1"
    shift
    "${offline[@]}" python3 -m kubernetes_validate --strict --quiet -k "$version" "$@"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The validator must catch a mistake, or passing means nothing.
cat >"$work/broken.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      containers:
        - name: broken
          image: broken
          imagePullPolicy: Always
          resource: {requests: {cpu: "1"}}
YAML
for version in $K8S_VERSIONS; do
    if validate "$version" "$work/broken.yaml" >/dev/null 2>&1; then
        fail "kubernetes-validate accepted a Deployment with a misspelt field (Kubernetes $version)"
    fi
done

kustomizations=()
while IFS= read -r file; do
    kustomizations+=("$(dirname "$file")")
done < <(find deploy/kubernetes -name kustomization.yaml -not -path '*/components/*' | sort)
((${#kustomizations[@]})) || fail "no kustomization.yaml under deploy/kubernetes"

files=()
if command -v kubectl >/dev/null 2>&1; then
    for dir in "${kustomizations[@]}"; do
        out="$work/$(echo "$dir" | tr '/' '_').yaml"
        kubectl kustomize "$dir" >"$out" || fail "kubectl kustomize $dir failed"
        objects="$(grep -c '^kind:' "$out" || true)"
        say "$dir renders $objects objects"
        ((objects > 0)) || fail "$dir renders no object"
        files+=("$out")
    done
else
    say "kubectl not found: validating the resource files as they are, unrendered"
    while IFS= read -r file; do
        files+=("$file")
    done < <(python3 - "${kustomizations[@]}" <<'PY'
import os, sys, yaml
seen = set()
def walk(d):
    k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
    for r in k.get("resources", []) + k.get("components", []):
        p = os.path.normpath(os.path.join(d, r))
        if os.path.isdir(p):
            walk(p)
        elif p not in seen:
            seen.add(p)
            print(p)
for d in sys.argv[1:]:
    walk(d)
PY
)
fi

for version in $K8S_VERSIONS; do
    validate "$version" "${files[@]}" || fail "invalid objects for Kubernetes $version (above)"
    say "every object is valid for Kubernetes $version ($([[ ${#offline[@]} -gt 0 ]] && echo offline || echo "network not isolated"))"
done

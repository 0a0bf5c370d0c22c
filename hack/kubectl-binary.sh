#!/usr/bin/env bash
# Provisions the pinned kubectl the container image ships (for the kustomize-build step), built
# from the Go module proxy the way hack/k8s-binaries.sh builds kube-apiserver: same Kubernetes
# version, same module setup, no prebuilt downloads. The Dockerfile fetches the same version
# from dl.k8s.io instead.
#
#   hack/kubectl-binary.sh          # prints the path of the kubectl binary
#
# Lookup order:
#   1. $HAUL_KUBECTL, if it is an executable file (a downloaded kubectl skips the build);
#   2. the cache $HAUL_K8S_CACHE/kubectl-<k8s>/kubectl (default ~/.cache/haul/k8s-bin), built when absent.
set -euo pipefail

K8S_VERSION=${HAUL_K8S_VERSION:-v1.34.4}
CACHE_ROOT=${HAUL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haul/k8s-bin}
DEST="$CACHE_ROOT/kubectl-$K8S_VERSION"

log() { echo "kubectl-binary: $*" >&2; }

if [ -n "${HAUL_KUBECTL:-}" ]; then
  [ -x "$HAUL_KUBECTL" ] || { log "HAUL_KUBECTL=$HAUL_KUBECTL is not an executable file"; exit 1; }
  echo "$HAUL_KUBECTL"
  exit 0
fi
if [ -x "$DEST/kubectl" ]; then
  echo "$DEST/kubectl"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build kubectl (or set HAUL_KUBECTL)"; exit 1; }
mkdir -p "$DEST"
# One build at a time per cache; a second caller waits and then finds the binary.
exec 9>"$DEST/.build.lock"
flock 9
if [ -x "$DEST/kubectl" ]; then
  echo "$DEST/kubectl"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0

start=$(date +%s)
log "building kubectl $K8S_VERSION (once; cached in $DEST; a few minutes on 2 cores)"
staging_v="v0.${K8S_VERSION#v1.}"
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
cd "$work"
{
  echo "module local/kubectl-build"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  # As in hack/k8s-binaries.sh: k8s.io/kubernetes requires its staging modules at v0.0.0.
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
    cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
    kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
    mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
    echo "	k8s.io/$m => k8s.io/$m $staging_v"
  done
  echo ")"
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubectl"
GO
go get "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" >&2
# The version variables Kubernetes' own build sets (hack/lib/version.sh), for `kubectl version`.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
go build -trimpath -ldflags "$ldflags" -o "$DEST/kubectl.tmp.$$" k8s.io/kubernetes/cmd/kubectl >&2
mv "$DEST/kubectl.tmp.$$" "$DEST/kubectl"
log "kubectl built in $(($(date +%s) - start))s"
echo "$DEST/kubectl"

#!/usr/bin/env bash
# Provisions pinned etcd and kube-apiserver binaries for the test control plane, the way envtest's
# setup step does, but built from the Go module proxy (no prebuilt downloads are reachable here).
#
#   hack/k8s-binaries.sh            # prints the directory that holds etcd and kube-apiserver
#
# Lookup order:
#   1. $KUBEBUILDER_ASSETS, if it holds both binaries (a user with downloaded binaries skips the build);
#   2. the cache $HAUL_K8S_CACHE/<k8s>-<etcd> (default ~/.cache/haul/k8s-bin), built when absent.
set -euo pipefail

K8S_VERSION=${HAUL_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${HAUL_ETCD_VERSION:-v3.6.8}
CACHE_ROOT=${HAUL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haul/k8s-bin}
DEST="$CACHE_ROOT/$K8S_VERSION-etcd$ETCD_VERSION"

log() { echo "k8s-binaries: $*" >&2; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

if [ -x "$DEST/etcd" ] && [ -x "$DEST/kube-apiserver" ]; then
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build etcd and kube-apiserver (or set KUBEBUILDER_ASSETS)"; exit 1; }
mkdir -p "$DEST"
# One build at a time per cache: a second process (another test binary, the quickstart) waits
# here and then finds the binaries the first one built.
exec 9>"$DEST/.build.lock"
if ! flock -n 9; then
  log "another process is building the control-plane binaries into $DEST; waiting for it"
  flock 9
fi
if [ -x "$DEST/etcd" ] && [ -x "$DEST/kube-apiserver" ]; then
  echo "$DEST"
  exit 0
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0

if [ ! -x "$DEST/etcd" ]; then
  start=$(date +%s)
  log "building etcd $ETCD_VERSION (once; cached in $DEST)"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  cat > go.mod <<GOMOD
module local/etcd-build

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$DEST/etcd.tmp.$$" . >&2
  mv "$DEST/etcd.tmp.$$" "$DEST/etcd"
  log "etcd built in $(( $(date +%s) - start ))s"
fi

if [ ! -x "$DEST/kube-apiserver" ]; then
  start=$(date +%s)
  log "building kube-apiserver $K8S_VERSION (once; cached in $DEST; several minutes on 2 cores)"
  staging_v="v0.${K8S_VERSION#v1.}"
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  mkdir -p "$work/kas" && cd "$work/kas"
  {
    echo "module local/kube-apiserver-build"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging;
    # replaces only apply in the main module, so point each at its published version.
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
      cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
      cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
      kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
      mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
      echo "	k8s.io/$m => k8s.io/$m $staging_v"
    done
    echo ")"
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2
  go build -trimpath -o "$DEST/kube-apiserver.tmp.$$" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver >&2
  mv "$DEST/kube-apiserver.tmp.$$" "$DEST/kube-apiserver"
  log "kube-apiserver built in $(( $(date +%s) - start ))s"
fi

echo "$DEST"

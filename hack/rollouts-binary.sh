#!/usr/bin/env bash
# Provisions a pinned Argo Rollouts controller for the tests (real AnalysisRuns), built from the Go
# module proxy the way hack/k8s-binaries.sh builds kube-apiserver: no prebuilt downloads are
# reachable here.
#
#   hack/rollouts-binary.sh         # prints the directory that holds rollouts-controller and crds/
#
# Lookup order:
#   1. $HAUL_ROLLOUTS_DIR, if it holds an executable rollouts-controller and crds/ (prebuilt);
#   2. the cache ${XDG_CACHE_HOME:-~/.cache}/haul/argo-rollouts/<version>-loopback, built when absent.
#
# The version is $HAUL_ROLLOUTS_VERSION (default below). v1.10.1 is the newest release whose go.mod
# (`go 1.26.1`) fits the Go 1.26.x toolchain here; v1.10.2 and v1.9.3 ask for go 1.26.10.
# crds/ is copied from the module's manifests/crds so the CRDs always match the controller.
#
# One patch: the controller listens for metrics and health on a hard-coded "0.0.0.0:%d" (no flag
# changes the address), so the build uses a copy of the module where that constant reads
# "127.0.0.1:%d" -- test machines expose nothing beyond loopback. The build fails if the constant
# is not found, rather than silently listening on every interface.
set -euo pipefail

ROLLOUTS_VERSION=${HAUL_ROLLOUTS_VERSION:-v1.10.1}
CACHE_ROOT=${HAUL_ROLLOUTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haul/argo-rollouts}
# Keyed by version and patch, so a binary built without the patch is never taken for one with it.
DEST="$CACHE_ROOT/$ROLLOUTS_VERSION-loopback"
MODULE=github.com/argoproj/argo-rollouts

log() { echo "rollouts-binary: $*" >&2; }
complete() { [ -x "$1/rollouts-controller" ] && [ -f "$1/crds/analysis-run-crd.yaml" ]; }
LISTEN_FILE=controller/controller.go

if [ -n "${HAUL_ROLLOUTS_DIR:-}" ]; then
  if complete "$HAUL_ROLLOUTS_DIR"; then
    echo "$HAUL_ROLLOUTS_DIR"
    exit 0
  fi
  log "HAUL_ROLLOUTS_DIR=$HAUL_ROLLOUTS_DIR holds no rollouts-controller and crds/; building into $DEST instead"
fi

if complete "$DEST"; then
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build the rollouts controller (or set HAUL_ROLLOUTS_DIR)"; exit 1; }
mkdir -p "$DEST"
# One build at a time per cache: a second process (another test binary) waits here and then
# finds the binary the first one built.
exec 9>"$DEST/.build.lock"
if ! flock -n 9; then
  log "another process is building the rollouts controller into $DEST; waiting for it"
  flock 9
fi
if complete "$DEST"; then
  echo "$DEST"
  exit 0
fi

start=$(date +%s)
log "building argo-rollouts $ROLLOUTS_VERSION (once; cached in $DEST; several minutes on 2 cores)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0
cd "$work"

info=$(go mod download -json "$MODULE@$ROLLOUTS_VERSION")
field() { printf '%s\n' "$info" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p"; }
src=$(field Dir)
upstream_gomod=$(field GoMod)
[ -d "$src" ] && [ -f "$upstream_gomod" ] || { log "go mod download gave no source for $MODULE@$ROLLOUTS_VERSION"; exit 1; }

# Replaces only apply in the main module, so the wrapper copies upstream's (k8s staging modules at
# a published version and a couple of forks; a local-path replace would not resolve here).
replaces=$(awk '
  /^replace[[:space:]]*\(/ { inblock = 1; next }
  inblock && /^\)/ { inblock = 0; next }
  inblock { sub(/\/\/.*/, ""); if ($0 ~ /=>/) print; next }
  /^replace[[:space:]]/ { sub(/^replace[[:space:]]+/, ""); sub(/\/\/.*/, ""); print }
' "$upstream_gomod")
# The patched copy the wrapper replaces the module with (see the header).
cp -R "$src" upstream
chmod -R u+w upstream
grep -q '"0.0.0.0:%d"' "upstream/$LISTEN_FILE" || { log "no \"0.0.0.0:%d\" in $LISTEN_FILE of $ROLLOUTS_VERSION: update the loopback patch"; exit 1; }
sed -i 's/"0\.0\.0\.0:%d"/"127.0.0.1:%d"/' "upstream/$LISTEN_FILE"

upstream_go=$(sed -n 's/^go[[:space:]]\+\([0-9.]*\).*/\1/p' "$upstream_gomod" | head -1)
{
  echo "module local/argo-rollouts-build"
  echo
  echo "go ${upstream_go:-1.26}"
  echo
  echo "require $MODULE $ROLLOUTS_VERSION"
  echo
  echo "replace ("
  echo "	$MODULE => ./upstream"
  while IFS= read -r line; do
    [ -n "${line//[[:space:]]/}" ] || continue
    target=$(printf '%s\n' "$line" | sed 's/.*=>[[:space:]]*//')
    case "$target" in
      .*|/*) log "dropping local replace: $line"; continue ;;
    esac
    printf '\t%s\n' "$(printf '%s\n' "$line" | sed 's/^[[:space:]]*//;s/[[:space:]]*$//')"
  done <<< "$replaces"
  echo ")"
} > go.mod
log "wrapper go.mod:"; sed 's/^/  /' go.mod >&2
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
GO
go get "$MODULE/cmd/rollouts-controller@$ROLLOUTS_VERSION" >&2
go build -trimpath -o "$DEST/rollouts-controller.tmp.$$" \
  -ldflags "-s -w -X $MODULE/utils/version.version=${ROLLOUTS_VERSION#v}" \
  "$MODULE/cmd/rollouts-controller" >&2

rm -rf "${DEST:?}/crds"
cp -R "$src/manifests/crds" "$DEST/crds"
chmod -R u+w "$DEST/crds"
mv "$DEST/rollouts-controller.tmp.$$" "$DEST/rollouts-controller"
log "rollouts-controller built in $(( $(date +%s) - start ))s"
echo "$DEST"

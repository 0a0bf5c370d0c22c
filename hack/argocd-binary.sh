#!/usr/bin/env bash
# Provisions a pinned Argo CD (and the kustomize its repo-server runs) for the tests and the
# quickstart, built from the Go module proxy the way hack/k8s-binaries.sh builds kube-apiserver:
# no prebuilt downloads are reachable here.
#
#   hack/argocd-binary.sh     # prints the directory holding argocd, its component symlinks,
#                             # kustomize and crds/ (Argo CD's own CRDs, from its module)
#
# Lookup order:
#   1. $ARGOCD_ASSETS, if it holds an executable argocd (prebuilt binaries skip the build);
#   2. the cache ${XDG_CACHE_HOME:-~/.cache}/haul/argocd/<version>, built when absent.
#
# Pins: HAUL_ARGOCD_VERSION (v3.2.x is the newest line whose go.mod fits Go 1.26 and has no
# local-path replace; v3.2.12 does not compile from the module proxy: controller/cache/info.go
# calls settings.ValidateExternalURL, which that tag does not define) and HAUL_KUSTOMIZE_VERSION
# (the one Argo CD's hack/tool-versions.sh names).
# One `argocd` binary serves every component by argv[0]: argocd-application-controller and
# argocd-repo-server are symlinks to it.
set -euo pipefail

ARGOCD_VERSION=${HAUL_ARGOCD_VERSION:-v3.2.11}
KUSTOMIZE_VERSION=${HAUL_KUSTOMIZE_VERSION:-v5.7.0}
CACHE_ROOT=${HAUL_ARGOCD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haul/argocd}
DEST="$CACHE_ROOT/$ARGOCD_VERSION"
MODULE=github.com/argoproj/argo-cd/v3

log() { echo "argocd-binary: $*" >&2; }
complete() {
  [ -x "$1/argocd" ] && [ -x "$1/kustomize" ] && [ -f "$1/crds/application-crd.yaml" ] \
    && [ -L "$1/argocd-application-controller" ] && [ -L "$1/argocd-repo-server" ]
}

if [ -n "${ARGOCD_ASSETS:-}" ]; then
  if [ -x "$ARGOCD_ASSETS/argocd" ]; then
    echo "$ARGOCD_ASSETS"
    exit 0
  fi
  log "ARGOCD_ASSETS=$ARGOCD_ASSETS holds no executable argocd; building into $DEST instead"
fi

if complete "$DEST"; then
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build argocd (or set ARGOCD_ASSETS)"; exit 1; }
mkdir -p "$DEST"
# One build at a time per cache: a second process (another test binary) waits here and then
# finds the binaries the first one built.
exec 9>"$DEST/.build.lock"
if ! flock -n 9; then
  log "another process is building argocd into $DEST; waiting for it"
  flock 9
fi
if complete "$DEST"; then
  echo "$DEST"
  exit 0
fi

start=$(date +%s)
export GOFLAGS=-mod=mod CGO_ENABLED=0
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# Prints a wrapper go.mod requiring $1@$2 with the replace directives of upstream go.mod $3.
# Replaces only apply in the main module, so the wrapper copies upstream's; a local-path
# replace would not resolve here and is dropped with a warning.
wrapper_gomod() {
  local module=$1 version=$2 upstream_gomod=$3 replaces line target
  replaces=$(awk '
    /^replace[[:space:]]*\(/ { inblock = 1; next }
    inblock && /^\)/ { inblock = 0; next }
    inblock { sub(/\/\/.*/, ""); if ($0 ~ /=>/) print; next }
    /^replace[[:space:]]/ { sub(/^replace[[:space:]]+/, ""); sub(/\/\/.*/, ""); print }
  ' "$upstream_gomod")
  echo "module local/build"
  echo
  echo "go 1.26"
  echo
  echo "require $module $version"
  echo
  echo "replace ("
  while IFS= read -r line; do
    [ -n "${line//[[:space:]]/}" ] || continue
    target=$(printf '%s\n' "$line" | sed 's/.*=>[[:space:]]*//')
    case "$target" in
      .*|/*) log "dropping local replace: $line"; continue ;;
    esac
    printf '\t%s\n' "$(printf '%s\n' "$line" | sed 's/^[[:space:]]*//;s/[[:space:]]*$//')"
  done <<< "$replaces"
  echo ")"
}

# build <module> <version> <main package> <output>
build() {
  local module=$1 version=$2 pkg=$3 out=$4 info dir
  dir="$work/$(basename "$out")"; mkdir -p "$dir"
  info=$(cd "$dir" && go mod download -json "$module@$version")
  field() { printf '%s\n' "$info" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p"; }
  SRC=$(field Dir)
  local gomod; gomod=$(field GoMod)
  [ -d "$SRC" ] && [ -f "$gomod" ] || { log "go mod download gave no source for $module@$version"; exit 1; }
  wrapper_gomod "$module" "$version" "$gomod" > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$dir/tools.go"
  (cd "$dir" && go get "$module@$version" >&2 && go build -trimpath -ldflags "${LDFLAGS:-} -s -w" -o "$out.tmp.$$" "$pkg" >&2)
  mv "$out.tmp.$$" "$out"
}

if [ ! -x "$DEST/kustomize" ]; then
  log "building kustomize $KUSTOMIZE_VERSION"
  LDFLAGS="-X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION" \
    build sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5 "$DEST/kustomize"
fi

log "building argocd $ARGOCD_VERSION (once; cached in $DEST; 10+ minutes on 2 cores)"
LDFLAGS="-X $MODULE/common.version=${ARGOCD_VERSION#v} -X $MODULE/common.gitTag=$ARGOCD_VERSION" \
  build "$MODULE" "$ARGOCD_VERSION" "$MODULE/cmd" "$DEST/argocd"

rm -rf "${DEST:?}/crds"
cp -R "$SRC/manifests/crds" "$DEST/crds"
chmod -R u+w "$DEST/crds"
for c in argocd-application-controller argocd-repo-server; do
  ln -sfn argocd "$DEST/$c"
done
log "argocd built in $(( $(date +%s) - start ))s"
echo "$DEST"

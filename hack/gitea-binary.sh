#!/usr/bin/env bash
# Provisions a pinned Gitea for the tests (a real git forge with an API, pull requests and
# webhooks), built from the Go module proxy the way hack/k8s-binaries.sh builds kube-apiserver:
# no prebuilt downloads are reachable here.
#
#   hack/gitea-binary.sh            # prints the directory that holds gitea, templates/ and options/
#
# Lookup order:
#   1. $HAUL_GITEA_DIR, if it holds an executable gitea (a prebuilt one skips the build);
#   2. the cache ${XDG_CACHE_HOME:-~/.cache}/haul/gitea/<version>, built when absent.
#
# Built without the `bindata` tag, Gitea reads templates/ and options/ from its static root at run
# time, so both are copied from the module next to the binary; there are no front-end assets
# (only the API and git over HTTP are used). Built with `sqlite sqlite_unlock_notify` (cgo).
set -euo pipefail

GITEA_VERSION=${HAUL_GITEA_VERSION:-v1.24.6}
CACHE_ROOT=${HAUL_GITEA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haul/gitea}
DEST="$CACHE_ROOT/$GITEA_VERSION"
TAGS="sqlite sqlite_unlock_notify"

log() { echo "gitea-binary: $*" >&2; }
complete() { [ -x "$1/gitea" ] && [ -d "$1/templates" ] && [ -d "$1/options" ]; }

if [ -n "${HAUL_GITEA_DIR:-}" ]; then
  if [ -x "$HAUL_GITEA_DIR/gitea" ]; then
    echo "$HAUL_GITEA_DIR"
    exit 0
  fi
  log "HAUL_GITEA_DIR=$HAUL_GITEA_DIR holds no executable gitea; building into $DEST instead"
fi

if complete "$DEST"; then
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build gitea (or set HAUL_GITEA_DIR)"; exit 1; }
command -v gcc >/dev/null || { log "gcc is required to build gitea with sqlite (cgo)"; exit 1; }
mkdir -p "$DEST"
# One build at a time per cache: a second process (another test binary) waits here and then
# finds the binary the first one built.
exec 9>"$DEST/.build.lock"
if ! flock -n 9; then
  log "another process is building gitea into $DEST; waiting for it"
  flock 9
fi
if complete "$DEST"; then
  echo "$DEST"
  exit 0
fi

start=$(date +%s)
log "building gitea $GITEA_VERSION (once; cached in $DEST; several minutes on 2 cores)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=1
cd "$work"

# The upstream module's go.mod and source directory, from the module cache.
info=$(go mod download -json "code.gitea.io/gitea@$GITEA_VERSION")
field() { printf '%s\n' "$info" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p"; }
src=$(field Dir)
upstream_gomod=$(field GoMod)
[ -d "$src" ] && [ -f "$upstream_gomod" ] || { log "go mod download gave no source for code.gitea.io/gitea@$GITEA_VERSION"; exit 1; }

# Replaces only apply in the main module, so the wrapper copies upstream's (all to public modules;
# a local-path replace would not resolve here and is dropped with a warning).
replaces=$(awk '
  /^replace[[:space:]]*\(/ { inblock = 1; next }
  inblock && /^\)/ { inblock = 0; next }
  inblock { sub(/\/\/.*/, ""); if ($0 ~ /=>/) print; next }
  /^replace[[:space:]]/ { sub(/^replace[[:space:]]+/, ""); sub(/\/\/.*/, ""); print }
' "$upstream_gomod")
{
  echo "module local/gitea-build"
  echo
  echo "go 1.26"
  echo
  echo "require code.gitea.io/gitea $GITEA_VERSION"
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
} > go.mod
log "wrapper go.mod:"; sed 's/^/  /' go.mod >&2
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "code.gitea.io/gitea"
GO
go get "code.gitea.io/gitea@$GITEA_VERSION" >&2
go build -trimpath -tags "$TAGS" -o "$DEST/gitea.tmp.$$" \
  -ldflags "-s -w -X 'main.MakeVersion=haul' -X 'main.Version=${GITEA_VERSION#v}' -X 'main.Tags=$TAGS'" \
  code.gitea.io/gitea >&2

# The static root: templates/ and options/ (locales, gitignore/license/readme templates).
for d in templates options; do
  rm -rf "${DEST:?}/$d"
  cp -R "$src/$d" "$DEST/$d"
  chmod -R u+w "$DEST/$d"
done
mv "$DEST/gitea.tmp.$$" "$DEST/gitea"
log "gitea built in $(( $(date +%s) - start ))s"
echo "$DEST"

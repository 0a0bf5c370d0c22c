#!/usr/bin/env bash
# Builds the haul release binary the way the Dockerfile's build stage does, on this machine, and
# reports what the runtime image has to provide for it. CI cannot pull images, so this is the proof
# that the build stage works.
#
#   hack/build-static.sh            # build and report
#   hack/build-static.sh --report   # only report on an existing binary
#
# Target choice (the same as the Dockerfile's):
#   * x86_64-unknown-linux-musl (a fully static binary) is used only when its rust-std is installed
#     (`rustup target list --installed`) and musl-gcc exists. rustup cannot download a target
#     offline (RUSTUP_AUTO_INSTALL=0 here), so on this machine that is normally not the case.
#   * otherwise x86_64-unknown-linux-gnu: a release binary linked dynamically against glibc only
#     (libc, libm, libgcc_s, the loader); every Rust crate and aws-lc (built by aws-lc-sys with
#     cc/cmake) is linked in statically. The script prints `ldd` and the newest GLIBC symbol
#     version it needs, which must be <= 2.36 (Debian 12 bookworm, the runtime base).
#
# Environment: CARGO_TARGET_DIR (default: target), HAUL_TARGET (force a target triple).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

log() { echo "build-static: $*" >&2; }
die() { log "error: $*"; exit 1; }

MUSL=x86_64-unknown-linux-musl
GNU=x86_64-unknown-linux-gnu
# Debian 12's glibc: the runtime image (debian:bookworm-slim) and the build image (rust:*-bookworm).
MAX_GLIBC=2.36

installed=$(rustup target list --installed 2>/dev/null || true)
log "installed rust targets: $(echo "$installed" | tr '\n' ' ')"
if [ -n "${HAUL_TARGET:-}" ]; then
  target=$HAUL_TARGET
elif grep -qx "$MUSL" <<<"$installed" && command -v musl-gcc >/dev/null; then
  target=$MUSL
else
  if ! grep -qx "$MUSL" <<<"$installed"; then
    log "$MUSL is not installed and rustup cannot download it offline: building $GNU"
  else
    log "$MUSL is installed but musl-gcc (Debian: musl-tools) is missing: building $GNU"
  fi
  target=$GNU
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
# The Dockerfile's settings, as environment so Cargo.toml stays untouched: strip the symbol table
# too (release builds already drop debug info).
export CARGO_PROFILE_RELEASE_STRIP=symbols
bin=$CARGO_TARGET_DIR/$target/release/haul

if [ "${1:-}" != --report ]; then
  log "cargo build --release --locked --no-default-features --bin haul --target $target"
  t0=$(date +%s)
  cargo build --release --locked --no-default-features --bin haul --target "$target"
  log "built in $(($(date +%s) - t0)) s"
fi
[ -x "$bin" ] || die "$bin does not exist"

size=$(stat -c %s "$bin")
echo "binary:  $bin"
echo "target:  $target"
echo "size:    $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }'))"
command -v file >/dev/null && echo "file:    $(file -b "$bin")"
echo "ldd:"
ldd "$bin" 2>&1 | sed 's/^/  /' || true
needed=$(readelf -d "$bin" | awk '/NEEDED/ { gsub(/[][]/, "", $5); print $5 }' | tr '\n' ' ')
echo "NEEDED:  ${needed:-none (static)}"
newest=$(objdump -T "$bin" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 || true)
echo "newest GLIBC symbol version: ${newest:-none}"
if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -1)" != "$MAX_GLIBC" ]; then
  die "needs GLIBC_$newest, newer than bookworm's $MAX_GLIBC"
fi
# Anything besides glibc's own libraries would have to be installed in the runtime image.
extra=$(tr ' ' '\n' <<<"$needed" | grep -v -E '^(libc|libm|libgcc_s|libpthread|libdl|librt|ld-linux-x86-64)\.so' | grep . || true)
[ -z "$extra" ] || die "links libraries the runtime image lacks: $extra"
echo "version: $("$bin" --version)"
crds=$("$bin" crds --stdout) || die "haul crds --stdout failed"
grep -q '^kind: CustomResourceDefinition' <<<"$crds" || die "haul crds --stdout printed no CRD"
echo "smoke:   haul --version and haul crds --stdout work"

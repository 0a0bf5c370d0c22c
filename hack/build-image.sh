#!/usr/bin/env bash
# Builds haul's container image without Docker: the Dockerfile's `runtime` stage assembled from
# Debian 12 packages with mmdebstrap, written as one image tarball that `docker load`,
# `podman load` and skopeo (`oci-archive:` and `docker-archive:`) all read.
#
#   hack/build-image.sh [HAUL_BINARY]     # default target/release/haul; prints the tarball's path
#
# Environment (all optional):
#   HAUL_IMAGE_OUT      the tarball (default target/image/haul-image.tar)
#   HAUL_IMAGE_NAME     its name and tag (default haul:<version the binary reports>)
#   HAUL_IMAGE_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   HAUL_IMAGE_SECURITY_MIRROR   (default http://deb.debian.org/debian-security)
#   HAUL_IMAGE_CACHE    downloaded packages and apt lists, so a rebuild downloads little
#                       (default ~/.cache/haul/image)
#   HAUL_KUBECTL        kubectl to ship (default: hack/kubectl-binary.sh builds the pinned one)
#   HAUL_HELM           helm to ship (default: the one `hack/test-services.sh install` provides)
#   SOURCE_DATE_EPOCH   every file's and the image's timestamp (default: the last commit's), so
#                       the same packages and binaries give the same image digest
#
# Needs mmdebstrap (apt-get install mmdebstrap). As root it builds in a chroot; as another user
# mmdebstrap's unshare mode needs entries in /etc/subuid and /etc/subgid (adduser writes them).
# The image has two layers: Debian with the packages, the user and kubectl/helm; then haul alone,
# so a new haul version changes only the second.
#
# Keep in step with the Dockerfile's runtime stage: PACKAGES, the user, the paths, ENV,
# ENTRYPOINT and CMD below are the same there.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SUITE=bookworm
# The Dockerfile's `apt-get install` list.
PACKAGES=(git openssh-client gnupg ca-certificates tini)
UID_GID=65532
# The Dockerfile's ENV, preceded by the PATH debian:bookworm-slim sets.
ENV_VARS=(
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  HAUL_WORK_DIR=/var/lib/haul
  HOME=/home/haul
  RUST_LOG=info
)

json_list() {
  local out="" s
  for s in "$@"; do out+="${out:+,}\"$s\""; done
  echo "[$out]"
}
# The image's config (OCI image-spec); diff_ids, VERSION, CREATED and ARCH from the caller.
image_config() {
  cat <<JSON
  {"created":"$CREATED","architecture":"$ARCH","os":"linux",
   "config":{"User":"$UID_GID:$UID_GID","Env":$(json_list "${ENV_VARS[@]}"),
    "Entrypoint":["/usr/bin/tini","--","/usr/local/bin/haul"],"Cmd":["controller"],
    "WorkingDir":"/var/lib/haul","ExposedPorts":{"8080/tcp":{}},
    "Labels":{"org.opencontainers.image.title":"haul",
     "org.opencontainers.image.description":"Promotes releases through environments the GitOps way (Kargo's kargo.akuity.io/v1alpha1 API)",
     "org.opencontainers.image.licenses":"Apache-2.0","org.opencontainers.image.version":"$VERSION"}},
   "rootfs":{"type":"layers","diff_ids":$(json_list "${diff_ids[@]}")},
   "history":[{"created":"$CREATED","created_by":"hack/build-image.sh: mmdebstrap --variant=minbase $SUITE + ${PACKAGES[*]}, user haul ($UID_GID), kubectl, helm"},
    {"created":"$CREATED","created_by":"hack/build-image.sh: /usr/local/bin/haul $VERSION"}]}
JSON
}

case ${1:-} in
  # What hack/check-image.sh --static compares with the Dockerfile, without building anything.
  --print-config)
    diff_ids=() VERSION=unknown CREATED=1970-01-01T00:00:00Z ARCH=$(dpkg --print-architecture)
    image_config
    exit 0
    ;;
  --print-packages)
    printf '%s\n' "${PACKAGES[@]}"
    exit 0
    ;;
esac

BIN=${1:-$ROOT/target/release/haul}
OUT=${HAUL_IMAGE_OUT:-$ROOT/target/image/haul-image.tar}
MIRROR=${HAUL_IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${HAUL_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=${HAUL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/haul/image}

log() { echo "build-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$BIN" ] && [ -x "$BIN" ] || die "haul binary $BIN is not an executable file (build it as the Dockerfile does: CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked --no-default-features --bin haul; or pass its path)"
command -v mmdebstrap >/dev/null || die "mmdebstrap is required: apt-get install mmdebstrap"
KUBECTL=${HAUL_KUBECTL:-$("$HERE/kubectl-binary.sh")}
HELM=${HAUL_HELM:-${HAUL_TOOLS:-$HOME/.cache/haul/tools}/bin/helm}
[ -x "$KUBECTL" ] || die "kubectl $KUBECTL is not executable (HAUL_KUBECTL)"
[ -x "$HELM" ] || die "helm $HELM is not executable (set HAUL_HELM, or run hack/test-services.sh install)"

VERSION=$("$BIN" --version | awk '{print $2}')
[ -n "$VERSION" ] || die "$BIN --version printed no version"
NAME=${HAUL_IMAGE_NAME:-haul:$VERSION}
case ${NAME##*/} in *:*) ;; *) NAME=$NAME:latest ;; esac
TAG=${NAME##*:}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
ARCH=$(dpkg --print-architecture)

t0=$(date +%s)
mkdir -p "$(dirname "$OUT")" "$CACHE/archives" "$CACHE/lists"
work=$(mktemp -d "$(dirname "$OUT")/.build-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/blobs/sha256"

# ------------------------------------------------------------------------------ layer 1: Debian
# minbase is debian:bookworm-slim's package set (Priority: required, plus apt); the dpkg
# path-excludes are its "slim" ones (no manuals, docs beyond copyright files, or translations).
# The cache is synced in before `apt-get update` and out after the install: apt then revalidates
# its lists and downloads only packages that changed.
log "debian layer: mmdebstrap $SUITE, ${PACKAGES[*]} (cache $CACHE)"
include=$(IFS=,; echo "${PACKAGES[*]}")
setup_user="groupadd --gid $UID_GID haul \
 && useradd --uid $UID_GID --gid $UID_GID --home-dir /home/haul --create-home --shell /usr/sbin/nologin haul \
 && install -d -o $UID_GID -g $UID_GID -m 0750 /var/lib/haul \
 && git --version && kubectl version --client && helm version --short"
# eatmydata: no fsync in a chroot that is thrown away (dpkg syncs every file otherwise).
mmdebstrap --variant=minbase --format=tar --include="$include" \
  --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/groff/*' \
  --dpkgopt='path-exclude=/usr/share/linda/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --skip=essential/unlink \
  --setup-hook='mkdir -p "$1/var/cache/apt/archives" "$1/var/lib/apt/lists"' \
  --setup-hook="sync-in '$CACHE/archives' /var/cache/apt/archives/" \
  --setup-hook="sync-in '$CACHE/lists' /var/lib/apt/lists/" \
  --customize-hook="sync-out /var/cache/apt/archives '$CACHE/archives'" \
  --customize-hook="sync-out /var/lib/apt/lists '$CACHE/lists'" \
  --customize-hook="copy-in '$KUBECTL' '$HELM' /usr/local/bin/" \
  --customize-hook='chroot "$1" sh -euc "chown 0:0 /usr/local/bin/kubectl /usr/local/bin/helm && chmod 0755 /usr/local/bin/kubectl /usr/local/bin/helm"' \
  --customize-hook="chroot \"\$1\" sh -euc '$setup_user' >&2" \
  --customize-hook='rm -f "$1/etc/resolv.conf" && : >"$1/etc/hostname"' \
  "$SUITE" - \
  "deb $MIRROR $SUITE main" \
  "deb $MIRROR $SUITE-updates main" \
  "deb $SECURITY_MIRROR $SUITE-security main" |
  # The runtime creates /dev; an image layer carries no device nodes.
  mmtarfilter --path-exclude='/dev/*' >"$work/layer1.tar"
t1=$(date +%s)
log "debian layer assembled in $((t1 - t0))s"

# --------------------------------------------------------------------------------- layer 2: haul
mkdir -p "$work/l2/usr/local/bin"
install -m 0755 "$BIN" "$work/l2/usr/local/bin/haul"
tar --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C "$work/l2" -cf "$work/layer2.tar" ./usr

# ------------------------------------------------------------------------------------ the image
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c%s "$1"; }
# blob FILE — moves FILE into blobs/sha256/<digest>; prints the digest.
blob() {
  local d
  d=$(sha "$1")
  mv "$1" "$work/blobs/sha256/$d"
  echo "$d"
}

diff_ids=() layers=() unpacked=0
for l in layer1 layer2; do
  diff_ids+=("sha256:$(sha "$work/$l.tar")")
  unpacked=$((unpacked + $(size "$work/$l.tar")))
  gzip -n -6 "$work/$l.tar"
  sz=$(size "$work/$l.tar.gz")
  layers+=("$(blob "$work/$l.tar.gz") $sz")
done
t2=$(date +%s)

image_config >"$work/config.json"
config_size=$(size "$work/config.json")
config=$(blob "$work/config.json")

layer_descs=""
for l in "${layers[@]}"; do
  read -r d sz <<<"$l"
  layer_descs+="${layer_descs:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$sz}"
done
cat >"$work/manifest.oci.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},
 "layers":[$layer_descs]}
JSON
manifest_size=$(size "$work/manifest.oci.json")
manifest=$(blob "$work/manifest.oci.json")

# The fully qualified name containerd (and so `docker load` since Docker 25) reads from index.json.
first=${NAME%%/*}
if [ "$first" = "$NAME" ]; then
  full=docker.io/library/$NAME
elif [[ $first == *.* || $first == *:* || $first == localhost ]]; then
  full=$NAME
else
  full=docker.io/$NAME
fi
cat >"$work/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,
  "annotations":{"io.containerd.image.name":"$full","org.opencontainers.image.ref.name":"$TAG"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
# docker-archive's manifest (what `docker save` writes next to the OCI layout since Docker 25),
# for older Docker and for tools that read only that format.
layer_paths=()
for l in "${layers[@]}"; do layer_paths+=("blobs/sha256/${l%% *}"); done
echo "[{\"Config\":\"blobs/sha256/$config\",\"RepoTags\":[\"$NAME\"],\"Layers\":$(json_list "${layer_paths[@]}")}]" >"$work/manifest.json"

tar --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C "$work" -cf "$OUT.tmp" oci-layout index.json manifest.json blobs
mv "$OUT.tmp" "$OUT"
t3=$(date +%s)

compressed=0
for l in "${layers[@]}"; do compressed=$((compressed + ${l##* })); done
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
log "image $NAME (sha256:$manifest, $ARCH)"
log "  layers compressed $(mib "$compressed") (tarball $(mib "$(size "$OUT")")), unpacked $(mib "$unpacked")"
log "  built in $((t3 - t0))s (debian layer $((t1 - t0))s, compression $((t2 - t1))s)"
echo "$OUT"

#!/usr/bin/env bash
# Pushes a tiny single-layer OCI image with curl only (no Docker) and prints its manifest digest.
#
#   hack/push-image.sh REGISTRY REPO TAG [CONTENT]
#
#   REGISTRY       host:port (plain HTTP) or a full http(s):// URL
#   CONTENT        the layer's /hello.txt; defaults to TAG, so different tags get different digests
#   CREATED        config `created` timestamp (RFC 3339), read by NewestBuild selection; default the epoch
#   REGISTRY_AUTH  user:password for registries with basic auth
#
# The layer tarball is reproducible, so the same CONTENT and CREATED always give the same digest.
set -euo pipefail
shopt -s inherit_errexit

[ $# -ge 3 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
REG=$1 REPO=$2 TAG=$3 CONTENT=${4:-$3}
case $REG in http://* | https://*) ;; *) REG=http://$REG ;; esac
REG=${REG%/}

CURL=(curl -sS --fail-with-body -m 30)
[ -n "${REGISTRY_AUTH:-}" ] && CURL+=(-u "$REGISTRY_AUTH")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/rootfs"
printf '%s\n' "$CONTENT" >"$work/rootfs/hello.txt"
tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf - . | gzip -n >"$work/layer.tar.gz"
diffid=sha256:$(gzip -dc "$work/layer.tar.gz" | sha256sum | cut -d' ' -f1)
printf '{"created":"%s","architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
  "${CREATED:-1970-01-01T00:00:00Z}" "$diffid" >"$work/config.json"

# upload FILE — monolithic blob upload (POST, then PUT ?digest=); skipped if the blob exists. Prints the digest.
upload() {
  local f=$1 d code loc sep
  d=sha256:$(sha256sum "$f" | cut -d' ' -f1)
  code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -I "$REG/v2/$REPO/blobs/$d" 2>/dev/null || true)
  if [ "$code" != 200 ]; then
    loc=$("${CURL[@]}" -X POST -D - -o /dev/null "$REG/v2/$REPO/blobs/uploads/" |
      tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    [ -n "$loc" ] || { echo "push-image: no upload location from $REG for $REPO" >&2; return 1; }
    case $loc in http*) ;; *) loc=$REG$loc ;; esac
    sep='?'
    case $loc in *\?*) sep='&' ;; esac
    "${CURL[@]}" -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$f" \
      -o /dev/null "$loc${sep}digest=$d"
  fi
  echo "$d"
}

config_digest=$(upload "$work/config.json")
layer_digest=$(upload "$work/layer.tar.gz")
cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config_digest","size":$(stat -c%s "$work/config.json")},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$layer_digest","size":$(stat -c%s "$work/layer.tar.gz")}]}
JSON
digest=$("${CURL[@]}" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary @"$work/manifest.json" -D - -o /dev/null "$REG/v2/$REPO/manifests/$TAG" |
  tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
[ -n "$digest" ] || { echo "push-image: registry returned no Docker-Content-Digest" >&2; exit 1; }
echo "$digest"

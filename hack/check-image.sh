#!/usr/bin/env bash
# Checks an image tarball from hack/build-image.sh the way a cluster would run it, without Docker:
# unpacks its layers, then runs commands from it in a chroot inside fresh mount and PID namespaces,
# as the image's user, with its environment and working directory, on a read-only root with
# tmpfs on /tmp and /var/lib/haul (what the chart mounts). Needs root (chroot, mounts).
#
#   hack/check-image.sh [IMAGE_TAR]     # default target/image/haul-image.tar
#   hack/check-image.sh --static        # only that hack/build-image.sh agrees with the
#                                       # Dockerfile (no image, no root; in .ci/run)
#
# What it checks:
#   1. the tarball reads as an OCI layout and as a docker-archive (with skopeo, when installed);
#   2. the image agrees with the Dockerfile's runtime stage: its packages, the user and its uid,
#      ENV, USER, WORKDIR, EXPOSE, ENTRYPOINT and CMD, the kubectl and helm versions;
#   3. it runs as that non-root user; git, ssh, ssh-keygen, gpg, kubectl (and `kubectl
#      kustomize`), helm, tini and haul run; the CA bundle is there; the work dir is writable;
#   4. `haul controller`, started through the image's ENTRYPOINT and CMD (tini as PID 1) against
#      a fresh kube-apiserver (hack/k8s-binaries.sh) and the test git server
#      (hack/test-services.sh), becomes ready, takes the leader Lease, discovers a commit as
#      Freight and promotes it to a Stage with git-clone, kustomize-build (the image's kubectl),
#      git-commit and git-push; the pushed branch holds the rendered manifests; SIGTERM stops it.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WAIT_S=${HAUL_CHECK_WAIT:-240}

log() { echo "check-image: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
ok() { log "ok: $*"; }

# ------------------------------------------------------------------------------ inside the image
# `__enter ROOTFS USER WORKDIR MNT ENV... -- CMD...`: runs in the new namespaces (see in_image).
if [ "${1:-}" = __enter ]; then
  shift
  R=$1 user=$2 wd=$3 mnt=$4
  shift 4
  envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  # A read-only root, as the chart runs it (readOnlyRootFilesystem), with its two emptyDirs.
  mount --bind "$R" "$R"
  mount -o remount,bind,ro "$R"
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
  mount -t tmpfs -o "mode=0750,uid=${user%%:*},gid=${user##*:}" tmpfs "$R/var/lib/haul"
  # The check's files (kubeconfig, manifests), read-only.
  mount --bind "$mnt" "$R/mnt"
  mount -o remount,bind,ro "$R/mnt"
  exec chroot --userspec="$user" "$R" /usr/bin/env -i "${envs[@]}" \
    /bin/sh -c 'cd "$0" && exec "$@"' "$wd" "$@"
fi

# ------------------------------------------------------------- the Dockerfile's runtime stage
DOCKERFILE=$ROOT/Dockerfile
runtime=$(sed -n '/^FROM .* AS runtime/,$p' "$DOCKERFILE")
[ -n "$runtime" ] || die "Dockerfile has no runtime stage"
mapfile -t df_packages < <(sed -n '/apt-get install/{n;p}' <<<"$runtime" | tr -s ' ' '\n' | grep -v -e '^$' -e '^\\$')
[ ${#df_packages[@]} -gt 0 ] || die "no package list found after the Dockerfile's apt-get install"
df_uid=$(grep -o 'useradd --uid [0-9]*' <<<"$runtime" | awk '{print $3}')
df_kubectl=$(sed -n 's/^ARG KUBECTL_VERSION=//p' "$DOCKERFILE")
df_helm=$(sed -n 's/^ARG HELM_VERSION=//p' "$DOCKERFILE")
df_json() { # the JSON-array instruction $1 of the runtime stage, compact
  sed -n "s/^$1 //p" <<<"$runtime" | jq -c .
}

# check_config_against_dockerfile CONFIG: USER, WORKDIR, ENTRYPOINT, CMD, EXPOSE, ENV, the uid.
check_config_against_dockerfile() {
  local c=$1 user wd kv p
  user=$(jq -r .config.User "$c") wd=$(jq -r .config.WorkingDir "$c")
  [ "$(sed -n 's/^USER //p' <<<"$runtime")" = "$user" ] || die "image user $user differs from the Dockerfile's USER"
  [ "${user%%:*}" = "$df_uid" ] || die "image user $user is not the Dockerfile's useradd uid $df_uid"
  [ "$(sed -n 's/^WORKDIR //p' <<<"$runtime" | tail -1)" = "$wd" ] || die "image WorkingDir $wd differs from the Dockerfile's WORKDIR"
  [ "$(df_json ENTRYPOINT)" = "$(jq -c .config.Entrypoint "$c")" ] || die "image Entrypoint $(jq -c .config.Entrypoint "$c") differs from the Dockerfile's $(df_json ENTRYPOINT)"
  [ "$(df_json CMD)" = "$(jq -c .config.Cmd "$c")" ] || die "image Cmd $(jq -c .config.Cmd "$c") differs from the Dockerfile's $(df_json CMD)"
  for p in $(sed -n 's/^EXPOSE //p' <<<"$runtime"); do
    jq -e --arg p "$p/tcp" '.config.ExposedPorts | has($p)' "$c" >/dev/null || die "image does not expose $p"
  done
  # ENV: the instruction's continuation lines, as KEY=VALUE words.
  for kv in $(awk '/^ENV /{on=1} on{print; if ($0 !~ /\\$/) on=0}' <<<"$runtime" | sed 's/^ENV //; s/\\$//'); do
    jq -e --arg kv "$kv" 'any(.config.Env[]; . == $kv)' "$c" >/dev/null || die "image Env lacks the Dockerfile's $kv"
  done
}

if [ "${1:-}" = --static ]; then
  # The recipe only, no image: cheap enough for every CI run.
  command -v jq >/dev/null || die "jq is required"
  cfg_file=$(mktemp)
  trap 'rm -f "$cfg_file"' EXIT
  "$HERE/build-image.sh" --print-config >"$cfg_file"
  check_config_against_dockerfile "$cfg_file"
  [ "$("$HERE/build-image.sh" --print-packages | sort)" = "$(printf '%s\n' "${df_packages[@]}" | sort)" ] ||
    die "hack/build-image.sh's packages ($("$HERE/build-image.sh" --print-packages | tr '\n' ' ')) differ from the Dockerfile's (${df_packages[*]})"
  k=$(sed -n 's/^K8S_VERSION=${HAUL_K8S_VERSION:-\(.*\)}$/\1/p' "$HERE/kubectl-binary.sh")
  [ "$k" = "$df_kubectl" ] || die "hack/kubectl-binary.sh builds kubectl $k, the Dockerfile ships $df_kubectl"
  ok "hack/build-image.sh agrees with the Dockerfile's runtime stage (packages, user $df_uid, ENV, WORKDIR, ENTRYPOINT, CMD, EXPOSE, kubectl $df_kubectl)"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (chroot and mounts): sudo $0 $*"
for c in jq openssl curl python3 unshare chroot git; do
  command -v "$c" >/dev/null || die "$c is required"
done
IMAGE=${1:-$ROOT/target/image/haul-image.tar}
[ -f "$IMAGE" ] || die "no image tarball $IMAGE (build it: hack/build-image.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/haul-check-image.XXXXXX")
PGIDS=()
cleanup() {
  local g
  # A throwaway control plane and controller: no graceful stop needed.
  for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  [ -f "$work/svc/env" ] && "$HERE/test-services.sh" stop "$work/svc" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# Interrupted: exit, so the EXIT trap cleans up.
trap "exit 130" INT TERM HUP PIPE

t_start=$(date +%s)

# ------------------------------------------------------------------------------------ 1. format
if command -v skopeo >/dev/null; then
  skopeo inspect "oci-archive:$IMAGE" >/dev/null || die "skopeo cannot read $IMAGE as oci-archive"
  skopeo inspect "docker-archive:$IMAGE" >/dev/null || die "skopeo cannot read $IMAGE as docker-archive"
  ok "reads as oci-archive and docker-archive (skopeo)"
else
  log "skopeo not installed: format check skipped (apt-get install skopeo)"
fi

# ------------------------------------------------------------------------------------ unpack
img=$work/img ROOTFS=$work/rootfs
mkdir -p "$img" "$ROOTFS" "$work/mnt"
tar -xf "$IMAGE" -C "$img"
jq -e 'length == 1' "$img/manifest.json" >/dev/null || die "manifest.json must list one image"
CONFIG=$img/$(jq -r '.[0].Config' "$img/manifest.json")
mapfile -t LAYERS < <(jq -r '.[0].Layers[]' "$img/manifest.json")
for l in "${LAYERS[@]}"; do
  # This image has no deletions, so a whiteout would mean layers this check cannot apply.
  tar -tzf "$img/$l" >"$work/entries"
  ! grep -q '\.wh\.' "$work/entries" || die "layer $l has whiteouts"
  tar -xzf "$img/$l" -C "$ROOTFS" --numeric-owner --same-permissions
done
ok "unpacked ${#LAYERS[@]} layers ($(du -sm "$ROOTFS" | cut -f1) MiB)"

cfg() { jq -c "$1" "$CONFIG"; }
RUN_USER=$(jq -r '.config.User' "$CONFIG")
WORKDIR=$(jq -r '.config.WorkingDir' "$CONFIG")
mapfile -t IMAGE_ENV < <(jq -r '.config.Env[]' "$CONFIG")
mapfile -t ENTRYPOINT < <(jq -r '.config.Entrypoint[]' "$CONFIG")
mapfile -t CMD < <(jq -r '.config.Cmd[]' "$CONFIG")

# in_image [ENV=VALUE...] -- CMD...: runs CMD in the image as its user with its env (plus ENV).
in_image() {
  local extra=()
  while [ "$1" != -- ]; do extra+=("$1"); shift; done
  shift
  unshare --mount --pid --fork --kill-child --propagation private -- \
    "$BASH" "$HERE/check-image.sh" __enter "$ROOTFS" "$RUN_USER" "$WORKDIR" "$work/mnt" \
    "${IMAGE_ENV[@]}" "${extra[@]}" -- "$@"
}

# --------------------------------------------------------------------- 2. agrees with Dockerfile
check_unpacked_against_dockerfile() {
  check_config_against_dockerfile "$CONFIG"
  for p in "${df_packages[@]}"; do
    grep -qx "Package: $p" "$ROOTFS/var/lib/dpkg/status" || die "the Dockerfile's package $p is not installed in the image"
  done
  grep -q "^haul:x:$df_uid:$df_uid::/home/haul:/usr/sbin/nologin$" "$ROOTFS/etc/passwd" ||
    die "/etc/passwd has no user haul ($df_uid) as the Dockerfile creates it"
  for f in $(sed -n 's/^COPY --from=[a-z]* [^ ]* //p' <<<"$runtime"); do
    [ -x "$ROOTFS$f" ] || die "the Dockerfile's $f is not an executable in the image"
  done
  [ "$(stat -c '%u:%g %a' "$ROOTFS/var/lib/haul")" = "$df_uid:$df_uid 750" ] || die "/var/lib/haul is not $df_uid:$df_uid 0750"
}
check_unpacked_against_dockerfile
ok "agrees with the Dockerfile: ${df_packages[*]}; user $RUN_USER; $(cfg .config.Entrypoint) $(cfg .config.Cmd)"

# ------------------------------------------------------------------------------------ 3. tools
out=$(in_image -- sh -c 'id -u; id -g; id -un; pwd')
[ "$out" = "$(printf '%s\n%s\nhaul\n%s' "${RUN_USER%%:*}" "${RUN_USER##*:}" "$WORKDIR")" ] || die "runs as/in: $out"
ok "runs as $(tr '\n' ' ' <<<"$out")"
kubectl_v=$df_kubectl helm_v=$df_helm
# Output captured first: `cmd | grep -q` fails under pipefail when grep exits before cmd writes.
v=$(in_image -- kubectl version --client)
grep -qx "Client Version: $kubectl_v" <<<"$v" || die "kubectl is not the Dockerfile's $kubectl_v: $v"
v=$(in_image -- helm version --short)
grep -q "^$helm_v+" <<<"$v" || die "helm is not the Dockerfile's $helm_v: $v"
for c in "git --version" "ssh -V" "gpg --version" "tini --version" "haul --version" \
  "test -s /etc/ssl/certs/ca-certificates.crt" "touch /var/lib/haul/w /tmp/w" \
  "ssh-keygen -q -t ed25519 -N '' -f /tmp/key"; do
  v=$(in_image -- sh -c "$c" 2>&1) || die "\`$c\` failed in the image: $v"
  log "  $c: $(head -1 <<<"$v")"
done
root_opts=$(in_image -- awk '$2 == "/" {print $4}' /proc/mounts)
[[ $root_opts == ro,* ]] || die "the root filesystem is not read-only ($root_opts)"
mkdir -p "$work/mnt/kust"
printf 'resources: [cm.yaml]\nnamePrefix: checked-\n' >"$work/mnt/kust/kustomization.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n' >"$work/mnt/kust/cm.yaml"
v=$(in_image -- kubectl kustomize /mnt/kust)
grep -q 'name: checked-c' <<<"$v" || die "kubectl kustomize did not render: $v"
ok "kubectl $kubectl_v (kustomize renders), helm $helm_v, git, ssh, gpg, tini, haul run; / is read-only"

# ------------------------------------------------------------------------- 4. control plane
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
# spawn LOG CMD...: CMD in its own session (so process group), killed at exit.
spawn() {
  local logf=$1
  shift
  setsid "$@" >"$logf" 2>&1 </dev/null &
  SPAWNED=$!
  disown "$SPAWNED"
  PGIDS+=("$SPAWNED")
}
# wait_for WHAT CMD...: polls CMD each second for up to WAIT_S seconds.
wait_for() {
  local what=$1 i
  shift
  for ((i = 0; i < WAIT_S; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "timed out after ${WAIT_S}s waiting for $what"
}

k8s=$("$HERE/k8s-binaries.sh")
read -r etcd_port peer_port api_port metrics_port <<<"$(free_ports 4)"
pki=$work/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=haul-check-ca
  cert() { # NAME SUBJECT EXTENSIONS
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -out "$1.crt" -extfile "$1.ext"
  }
  cert apiserver /CN=kube-apiserver $'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'
  cert admin "/O=system:masters/CN=haul-check" 'extendedKeyUsage=clientAuth'
  openssl genrsa -out sa.key 2048
  openssl rsa -in sa.key -pubout -out sa.pub
) >"$work/pki.log" 2>&1 || { cat "$work/pki.log" >&2; die "openssl failed"; }
spawn "$work/etcd.log" "$k8s/etcd" --name=check --data-dir="$work/etcd" \
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="check=http://127.0.0.1:$peer_port" --unsafe-no-fsync=true --log-level=warn
spawn "$work/apiserver.log" "$k8s/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
  --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --secure-port="$api_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --service-cluster-ip-range=10.0.0.0/24 --disable-admission-plugins=ServiceAccount \
  --authorization-mode=RBAC --client-ca-file="$pki/ca.crt" \
  --service-account-issuer="https://127.0.0.1:$api_port/" \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key"
b64() { base64 -w0 <"$1"; }
cat >"$work/mnt/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: check, cluster: {server: "https://127.0.0.1:$api_port", certificate-authority-data: $(b64 "$pki/ca.crt")}}]
users: [{name: admin, user: {client-certificate-data: $(b64 "$pki/admin.crt"), client-key-data: $(b64 "$pki/admin.key")}}]
contexts: [{name: check, context: {cluster: check, user: admin}}]
current-context: check
YAML
chmod 0644 "$work/mnt/kubeconfig"
# The image's kubectl, run from the host (a static binary) for the many polls below.
kc() { KUBECONFIG=$work/mnt/kubeconfig KUBECACHEDIR=$work/kubecache "$ROOTFS/usr/local/bin/kubectl" "$@"; }
wait_for "kube-apiserver /readyz" kc get --raw /readyz
ok "kube-apiserver ready on 127.0.0.1:$api_port"

KENV=(KUBECONFIG=/mnt/kubeconfig KUBECACHEDIR=/tmp/kubecache)
in_image -- haul crds --stdout >"$work/mnt/crds.yaml"
in_image "${KENV[@]}" -- kubectl apply -f /mnt/crds.yaml >/dev/null
kc wait --for condition=established --timeout=120s -f "$work/mnt/crds.yaml" >/dev/null
ok "CRDs from the image's haul applied with its kubectl"

"$HERE/test-services.sh" start "$work/svc" >"$work/svc.log" 2>&1 || { tail -20 "$work/svc.log" >&2; die "test services did not start"; }
# shellcheck disable=SC1091
. "$work/svc/env"
if command -v skopeo >/dev/null; then
  # How a user without Docker pushes it (to ECR: --dest-creds AWS:$(aws ecr get-login-password)).
  skopeo copy -q --dest-tls-verify=false "oci-archive:$IMAGE" "docker://$HAUL_TEST_REGISTRY/haul:check" >/dev/null ||
    die "skopeo could not push the image to the test registry"
  pushed=$(skopeo inspect --tls-verify=false --config "docker://$HAUL_TEST_REGISTRY/haul:check" | jq -c .config.Entrypoint)
  [ "$pushed" = "$(cfg .config.Entrypoint)" ] || die "the pushed image's config differs: $pushed"
  ok "pushed to a registry with skopeo and read back"
fi
url=$("$HERE/test-services.sh" new-repo "$work/svc" gitops)
creds_url=${url/http:\/\//http://$HAUL_TEST_GIT_USER:$(jq -rn --arg p "$HAUL_TEST_GIT_PASSWORD" '$p|@uri')@}
src=$work/gitops-src
git init -q -b main "$src"
mkdir -p "$src/app"
printf 'resources: [deploy.yaml]\nnamePrefix: dev-\n' >"$src/app/kustomization.yaml"
printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n' >"$src/app/deploy.yaml"
git -C "$src" add -A
git -C "$src" -c user.name=check -c user.email=check@haul.invalid commit -q -m "app"
git -C "$src" push -q "$creds_url" main
commit=$(git -C "$src" rev-parse HEAD)

ns=image-check
cat >"$work/mnt/project.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $ns, labels: {kargo.akuity.io/project: "true"}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: $ns}
---
apiVersion: v1
kind: Secret
metadata:
  name: git
  namespace: $ns
  labels: {kargo.akuity.io/cred-type: git}
stringData:
  repoURL: "$url"
  username: "$HAUL_TEST_GIT_USER"
  password: '$HAUL_TEST_GIT_PASSWORD'
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: $ns, namespace: $ns}
spec:
  promotionPolicies:
  - stageSelector: {name: dev}
    autoPromotionEnabled: true
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: $ns}
spec:
  interval: 100h
  subscriptions:
  - git: {repoURL: "$url", branch: main}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: $ns}
spec:
  requestedFreight:
  - origin: {kind: Warehouse, name: app}
    sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: "$url"
          checkout:
          - {commit: "\${{ commitFrom('$url').ID }}", path: ./src}
          - {branch: rendered/dev, create: true, path: ./out}
      - uses: git-clear
        config: {path: ./out}
      - uses: kustomize-build
        config: {path: ./src/app, outPath: ./out/manifests.yaml}
      - uses: git-commit
        config: {path: ./out, message: "render dev"}
      - uses: git-push
        config: {path: ./out}
YAML
in_image "${KENV[@]}" -- kubectl apply -f /mnt/project.yaml >/dev/null

# The controller: the image's ENTRYPOINT and CMD, PID 1 of its namespace, as a pod runs it.
spawn "$work/controller.log" unshare --mount --pid --fork --kill-child --propagation private -- \
  "$BASH" "$HERE/check-image.sh" __enter "$ROOTFS" "$RUN_USER" "$WORKDIR" "$work/mnt" \
  "${IMAGE_ENV[@]}" "${KENV[@]}" POD_NAMESPACE=default HAUL_METRICS_ADDR="127.0.0.1:$metrics_port" \
  HAUL_RECEIVERS_ADDR=off -- "${ENTRYPOINT[@]}" "${CMD[@]}"
unshare_pid=$SPAWNED
t_ctl=$(date +%s)
# Alive and not a zombie.
controller_alive() {
  local st
  read -r st 2>/dev/null <"/proc/$unshare_pid/stat" || return 1
  st=${st##*) }
  [ "${st:0:1}" != Z ]
}
fail_ctl() {
  tail -n 40 "$work/controller.log" >&2
  die "$*"
}
ready() { controller_alive && [ "$(curl -s -m 2 "http://127.0.0.1:$metrics_port/readyz" -o /dev/null -w '%{http_code}')" = 200 ]; }
wait_for "the controller's /readyz" ready || fail_ctl "not ready"
controller_alive || fail_ctl "the controller exited"
# Its process, seen from the host, runs as the image's user.
haul_pid=$(pgrep -P "$(pgrep -P "$unshare_pid" | head -1)" -x haul | head -1) || true
[ -n "$haul_pid" ] || fail_ctl "no haul process under tini"
[ "$(awk '/^Uid:/{print $2}' "/proc/$haul_pid/status")" = "${RUN_USER%%:*}" ] || fail_ctl "haul does not run as uid ${RUN_USER%%:*}"
ok "controller ready in $(($(date +%s) - t_ctl))s, pid $haul_pid (uid ${RUN_USER%%:*}) under tini (PID 1 of its namespace)"

holder() { [ -n "$(kc get lease -n default -o jsonpath='{.items[*].spec.holderIdentity}')" ]; }
wait_for "a leader Lease in namespace default" holder
ok "leader Lease held: $(kc get lease -n default -o jsonpath='{range .items[*]}{.metadata.name}={.spec.holderIdentity} {end}')"

freight() { [[ $(kc get freight -n "$ns" -o jsonpath='{.items[*].commits[0].id}') == *"$commit"* ]]; }
wait_for "Freight for commit $commit" freight
ok "Warehouse discovered commit ${commit:0:12} as Freight (git ls-remote from the image)"

promoted() {
  [[ " $(kc get promotion -n "$ns" -o jsonpath='{.items[*].status.phase}') " == *" Succeeded "* ]]
}
phase_failed() { [[ " $(kc get promotion -n "$ns" -o jsonpath='{.items[*].status.phase}') " =~ \ (Failed|Errored)\  ]]; }
for ((i = 0; i < WAIT_S; i++)); do
  promoted && break
  if phase_failed; then
    kc get promotion -n "$ns" -o yaml >&2
    fail_ctl "the Promotion failed"
  fi
  controller_alive || fail_ctl "the controller exited"
  sleep 1
done
promoted || { kc get promotion,stage -n "$ns" -o yaml >&2; fail_ctl "no Promotion succeeded within ${WAIT_S}s"; }
rendered=$(git --git-dir="$HAUL_TEST_GIT_ROOT/gitops.git" show rendered/dev:manifests.yaml) ||
  fail_ctl "branch rendered/dev has no manifests.yaml"
grep -q 'name: dev-web' <<<"$rendered" || fail_ctl "manifests.yaml is not the kustomize rendering: $rendered"
ok "auto-promotion Succeeded: rendered/dev holds the kustomize rendering (git clone/commit/push and kubectl kustomize from the image)"

# A pod's stop: SIGTERM to PID 1 (tini), which forwards it to haul.
tini_pid=$(pgrep -P "$unshare_pid" | head -1)
kill -TERM "$tini_pid"
for ((i = 0; i < 30; i++)); do controller_alive || break; sleep 1; done
controller_alive && fail_ctl "the controller did not stop within 30s of SIGTERM"
grep -q 'ERROR' "$work/controller.log" && log "note: the controller logged errors: $(grep -c ERROR "$work/controller.log")"
ok "SIGTERM stopped it"
log "all checks passed in $(($(date +%s) - t_start))s"

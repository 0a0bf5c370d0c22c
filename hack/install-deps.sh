#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, skipping those already present so a warm
# machine does no apt work.
set -euo pipefail
# gnupg and openssh-client: signed commits and tags (tests generate GPG and SSH keys).
# redis-server: the cache Argo CD's application-controller and repo-server share (tests, quickstart).
pkgs=(git curl ca-certificates build-essential cmake pkg-config gnupg openssh-client redis-server)
# chromium and chromium-driver: the web UI's browser tests (tests/ui.rs), headless over WebDriver.
pkgs+=(chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v kubectl >/dev/null || { echo "kubectl is required (Debian: kubernetes-client is too old; install kubectl >= 1.30)"; exit 1; }

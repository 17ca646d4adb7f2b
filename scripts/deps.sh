#!/usr/bin/env bash
# Installs (when missing) and starts what `make run`, `make test` and `make bench`
# need on a Debian or Ubuntu machine: MariaDB server, promtool, the peers we compare
# against (node_exporter, mysqld_exporter). Idempotent: a second run changes nothing.
set -euo pipefail

need_pkgs=()
want() { # want <command-or-path> <debian-package>
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -e "$1" ]; then need_pkgs+=("$2"); fi
}
want mariadbd mariadb-server
want mariadb mariadb-client
want promtool prometheus
want prometheus-node-exporter prometheus-node-exporter
want prometheus-mysqld-exporter prometheus-mysqld-exporter
want curl curl

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: missing ${need_pkgs[*]} and apt-get is not available; install them by hand" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "deps: installing ${need_pkgs[*]} (apt-get)"
  $sudo apt-get update -qq
  # No service is started by the packages' scripts: we start what we need below,
  # and the peers are started by the bench script only.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  $sudo rm -f /usr/sbin/policy-rc.d
fi

# Docker is a prerequisite of the quick start, not something we install.
if ! docker info >/dev/null 2>&1; then
  echo "deps: the Docker engine is not reachable (docker info failed); start it first" >&2
  exit 1
fi
echo "deps: ok"

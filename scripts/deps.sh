#!/usr/bin/env bash
# Installs (when missing) and starts what `make run`, `make test` and `make bench`
# need on a Debian or Ubuntu machine: MariaDB server, promtool and Prometheus,
# Alertmanager and amtool, and the peers we compare against (node_exporter,
# mysqld_exporter). Idempotent: a second run changes nothing. Services are not
# started here: tests start their own instances, `make run` starts MariaDB.
set -euo pipefail

need_pkgs=()
want() { # want <command> <debian-package>: the package when the command is missing
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then return; fi
  case " ${need_pkgs[*]} " in *" $2 "*) ;; *) need_pkgs+=("$2") ;; esac
}
want mariadbd mariadb-server
want mariadb-install-db mariadb-server
want mariadb mariadb-client
want promtool prometheus
want prometheus-node-exporter prometheus-node-exporter
want prometheus-mysqld-exporter prometheus-mysqld-exporter
want prometheus-alertmanager prometheus-alertmanager
want amtool prometheus-alertmanager
want nginx nginx
want curl curl
want sshd openssh-server
want ssh-keygen openssh-client
# PostgreSQL for test/pgtest: Debian keeps initdb and postgres off PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || want initdb postgresql

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: missing ${need_pkgs[*]} and apt-get is not available; install them by hand" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "deps: installing ${need_pkgs[*]} (apt-get)"
  $sudo apt-get update -qq
  # No service is started by the packages' scripts (policy-rc.d says no):
  # tests start their own instances and the bench script starts the peers.
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

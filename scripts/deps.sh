#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when running as root in
# CI (CI=true). Elsewhere it only says what is missing, so a developer's
# machine is never changed behind their back.
set -euo pipefail

target=${1:-test}
case "$target" in
  # internal/pgtest runs a throwaway PostgreSQL; internal/report and the
  # dashboard open pages in headless Chromium; internal/prometheus's tests
  # run Debian's Prometheus.
  test)  need=(pg-server:postgresql chromium:chromium prometheus:prometheus git:git) ;;  # and retire lists references with git grep
  bench) need=(nginx:nginx-light wrk:wrk) ;;
  *) echo "usage: deps.sh test|bench" >&2; exit 2 ;;
esac

# found reports whether a command is installed. pg-server stands for the
# PostgreSQL server binaries, which Debian keeps off PATH, in
# /usr/lib/postgresql/<major>/bin.
found() {
  case "$1" in
    pg-server) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ;;
  esac
}

missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  found "$cmd" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && { [ "${CI:-}" = true ] || [ "${SHIPGATE_INSTALL_DEPS:-}" = 1 ]; }; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "deps: missing Debian packages: ${missing[*]} (apt-get install ${missing[*]}, or run as root with SHIPGATE_INSTALL_DEPS=1)" >&2
  # Outside CI the tests that need a missing package skip with a loud
  # message; in CI they fail, so a missing install step cannot hide.
  if [ "$target" = test ] && [ "${CI:-}" != true ]; then
    echo "deps: the tests that need them will be SKIPPED" >&2
    exit 0
  fi
  exit 1
fi

#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when running as root in
# CI (CI=true). Elsewhere it only says what is missing, so a developer's
# machine is never changed behind their back.
set -euo pipefail

case "${1:-test}" in
  test)  need=() ;;                 # the tests need nothing beyond Go yet
  bench) need=(nginx:nginx-light wrk:wrk) ;;
  *) echo "usage: deps.sh test|bench" >&2; exit 2 ;;
esac

missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && { [ "${CI:-}" = true ] || [ "${SHIPGATE_INSTALL_DEPS:-}" = 1 ]; }; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "deps: missing Debian packages: ${missing[*]} (apt-get install ${missing[*]}, or run as root with SHIPGATE_INSTALL_DEPS=1)" >&2
  exit 1
fi

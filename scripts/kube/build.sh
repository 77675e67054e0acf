#!/usr/bin/env bash
# Builds the Kubernetes control plane that internal/kubetest runs — etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok —
# from the Go module proxy (no other download is possible on the test
# machines), into a cache directory keyed by the versions and by the go.sum of
# the three modules beside this script. Prints that directory (the bin dir) on
# stdout, and nothing else; progress goes to stderr.
#
# Cold: about 12 minutes on 2 cores, ~1.9 GB peak. Cached: well under a
# second. A warm Go build cache (binaries deleted) relinks in about a minute.
#
#   SHIPGATE_KUBE_CACHE   where the versioned bin dirs live (default:
#                         shipgate/kube beside $(go env GOCACHE))
#   SHIPGATE_KUBE_NICE    nice level of the build (default 10)
#   SHIPGATE_KUBE_CACHED_ONLY=1  print the bin dir if cached, else exit 3
#                         without building (go test -short uses it)
set -euo pipefail

KUBE_VERSION=v1.35.4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
go=${GO:-go}

# The key covers what decides the binaries: the versions pinned in the
# modules' go.mod/go.sum, etcd's main, and RECIPE, to be bumped when a change
# of this script changes what it builds (flags, stages).
RECIPE=1
sum=$( (echo "recipe $RECIPE"; cat "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/k8s/go.mod "$here"/k8s/go.sum \
  "$here"/kwok/go.mod "$here"/kwok/go.sum "$here"/etcd/main.go) | sha256sum | cut -c1-12)
# Beside Go's own build cache (~/.cache/go-build → ~/.cache/shipgate/kube),
# so that whatever keeps one keeps the other.
cache=${SHIPGATE_KUBE_CACHE:-$(dirname "$("$go" env GOCACHE)")/shipgate/kube}
dir="$cache/$KUBE_VERSION-$sum"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
  [ -f "$dir/.complete" ] || return 1
  for b in "${bins[@]}"; do [ -x "$dir/$b" ] || return 1; done
  [ -f "$dir/kwok-stages.yaml" ]
}
if complete; then echo "$dir"; exit 0; fi
if [ "${SHIPGATE_KUBE_CACHED_ONLY:-}" = 1 ]; then
  echo "kube build: $dir is not built (scripts/kube/build.sh builds it, ~12 minutes)" >&2
  exit 3
fi

mkdir -p "$cache"
# Test binaries of several packages may ask at once: one builds, the others
# wait for it and then find the cache complete.
exec 9>"$cache/.lock"
flock 9
if complete; then echo "$dir"; exit 0; fi

tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
nice=${SHIPGATE_KUBE_NICE:-10}
start=$(date +%s)
log() { echo "kube build: $*" >&2; }

# -mod=mod would let go rewrite go.sum; -mod=readonly makes a stale go.sum an
# error instead, so what CI builds is what the commit says.
export GOFLAGS="${GOFLAGS:-$("$go" env GOFLAGS)} -mod=readonly -buildvcs=false"

log "etcd (go.etcd.io/etcd/server/v3 etcdmain) -> $dir"
(cd "$here/etcd" && nice -n "$nice" "$go" build -trimpath -o "$tmp/etcd" .)

major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
 -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
log "k8s.io/kubernetes $KUBE_VERSION: kube-apiserver kube-controller-manager kube-scheduler kubectl (the long part)"
(cd "$here/k8s" && nice -n "$nice" "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

log "kwok"
(cd "$here/kwok" && nice -n "$nice" "$go" build -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)

# kwok's bare binary has no stages of its own: take its "fast" node and pod
# stages (and the node heartbeat, so the node controller keeps nodes Ready)
# from the kwok module itself, at the version pinned above.
kwokdir=$(cd "$here/kwok" && "$go" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for f in "$kwokdir"/kustomize/stage/node/fast/*.yaml "$kwokdir"/kustomize/stage/node/heartbeat/*.yaml \
  "$kwokdir"/kustomize/stage/pod/fast/*.yaml; do
  case "$(basename "$f")" in kustomization.yaml) continue ;; esac
  echo "---"
  echo "# from sigs.k8s.io/kwok ${kwokdir##*@}: ${f#"$kwokdir"/}"
  cat "$f"
done >"$tmp/kwok-stages.yaml"

"$tmp/kube-apiserver" --version >&2
date -u +%FT%TZ >"$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
log "done in $(($(date +%s) - start))s"
echo "$dir"

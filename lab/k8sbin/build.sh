#!/usr/bin/env bash
# Build the lab control-plane binaries from this wrapper module into $1 (a cache dir outside the repo).
# Static (CGO_ENABLED=0), stripped, and version-stamped so /version reports the real release.
set -euo pipefail
out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
k8s=$(sed -n 's#^[[:space:]]*k8s.io/kubernetes v\([0-9.]*\).*#\1#p' go.mod)
minor=$(echo "$k8s" | cut -d. -f2)
ldf="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldf="$ldf -X $p.gitVersion=v$k8s -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
mkdir -p "$out.tmp"
export CGO_ENABLED=0
go build -trimpath -ldflags "$ldf" -o "$out.tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
rm -rf "$out" && mv "$out.tmp" "$out"

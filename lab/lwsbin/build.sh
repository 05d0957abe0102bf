#!/usr/bin/env bash
# Build the LeaderWorkerSet controller (sigs.k8s.io/lws/cmd) from this wrapper module into $1
# (a cache dir outside the repo) as $1/lws-controller: static (CGO_ENABLED=0), stripped, and
# stamped with the release like upstream's `make build`, so its start-up log names v0.7.0.
set -euo pipefail
out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
lws=$(go list -m -f '{{.Version}}' sigs.k8s.io/lws)
commit=cd3a73a3f5e00cfa9cd2c1c92f00f6189d88073e # the v0.7.0 tag (the module proxy's .info Origin.Hash)
pkg=sigs.k8s.io/lws/pkg/version
mkdir -p "$out.tmp"
export CGO_ENABLED=0
go build -trimpath -ldflags "-s -w -X $pkg.GitVersion=$lws -X $pkg.GitCommit=$commit" \
  -o "$out.tmp/lws-controller" sigs.k8s.io/lws/cmd
rm -rf "$out" && mv "$out.tmp" "$out"

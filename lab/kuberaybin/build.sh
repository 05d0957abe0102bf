#!/usr/bin/env bash
# Build KubeRay's operator (github.com/ray-project/kuberay/ray-operator, the module's main package) from this
# wrapper module into $1 (a cache dir outside the repo) as $1/ray-operator: static, stripped.
set -euo pipefail
out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
mkdir -p "$out.tmp"
export CGO_ENABLED=0
go build -trimpath -ldflags "-s -w" -o "$out.tmp/ray-operator" github.com/ray-project/kuberay/ray-operator
rm -rf "$out" && mv "$out.tmp" "$out"

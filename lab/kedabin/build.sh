#!/usr/bin/env bash
# Build KEDA's operator and metrics API server (github.com/kedacore/keda/v2/cmd/{operator,adapter}) from this
# wrapper module into $1 (a cache dir outside the repo) as $1/keda-operator and $1/keda-adapter: one go build
# for both (they share nearly every package), static, stripped.
set -euo pipefail
out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
mkdir -p "$out.tmp"
export CGO_ENABLED=0
go build -trimpath -ldflags "-s -w" -o "$out.tmp/" github.com/kedacore/keda/v2/cmd/operator github.com/kedacore/keda/v2/cmd/adapter
mv "$out.tmp/operator" "$out.tmp/keda-operator" && mv "$out.tmp/adapter" "$out.tmp/keda-adapter"
rm -rf "$out" && mv "$out.tmp" "$out"

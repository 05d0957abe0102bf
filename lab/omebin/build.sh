#!/usr/bin/env bash
# Build OME's controller (github.com/sgl-project/ome/cmd/manager) from this wrapper module into
# $1 (a cache dir outside the repo) as $1/ome-manager: stripped, stamped with the release like
# upstream's `make manager`.
#
# Two workarounds, both needed for v0.1.5 (see lab/labctl/controllers.py):
# - the checksum database has no entry for github.com/sgl-project/ome (nor for two of its
#   dependencies), so GONOSUMDB skips the lookup for OME itself and go.sum, seeded from OME's
#   own go.sum, carries the rest;
# - cmd/manager links the Rust cgo library libxet (pkg/xet), which cannot be built here:
#   xetstub/xet_stub.c is linked in its place (the module's own -L names a Rust target dir that
#   does not exist; ld searches -L dirs before its default ones), next to empty
#   libssl/libcrypto/libstdc++ archives that satisfy the real library's extra -l flags, which
#   the stub does not need (so neither libssl-dev nor g++ is required, only gcc).
set -euo pipefail
out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export GONOSUMDB=github.com/sgl-project/ome${GONOSUMDB:+,$GONOSUMDB}
export CGO_ENABLED=1
ome=$(go list -m -f '{{.Version}}' github.com/sgl-project/ome)
commit=957f541e469f22333282e4287d5b29b87044b935 # the v0.1.5 tag (the module proxy's .info Origin.Hash)
src=$(go list -m -f '{{.Dir}}' github.com/sgl-project/ome)
[ -n "$src" ] || { go mod download github.com/sgl-project/ome && src=$(go list -m -f '{{.Dir}}' github.com/sgl-project/ome); }
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
gcc -O2 -Wall -I "$src/pkg/xet" -c xetstub/xet_stub.c -o "$stub/xet_stub.o"
ar rcs "$stub/libxet.a" "$stub/xet_stub.o"
for lib in ssl crypto stdc++; do ar rcs "$stub/lib$lib.a"; done
pkg=github.com/sgl-project/ome/pkg/version
mkdir -p "$out.tmp"
CGO_LDFLAGS="-L$stub${CGO_LDFLAGS:+ $CGO_LDFLAGS}" go build -trimpath \
  -ldflags "-s -w -X $pkg.GitVersion=$ome -X $pkg.GitCommit=$commit" -o "$out.tmp/ome-manager" \
  github.com/sgl-project/ome/cmd/manager
rm -rf "$out" && mv "$out.tmp" "$out"

#!/usr/bin/env bash
# Build the JuiceFS client from this wrapper module into $1 (a cache dir outside the repo).
# JuiceFS 1.x does not build with CGO_ENABLED=0 (cmd/ and pkg/compress import cgo-only
# packages: DataDog/zstd, hungys/go-lz4, erikdubbelboer/gspt), so this is a cgo build linked
# fully static (netgo/osusergo, -extldflags -static) so that one file runs on any x86-64 Linux
# machine. Stripped and stamped with the release's revision, like `make juicefs` at the tag.
set -euo pipefail
out=${1:?usage: build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
pkg=github.com/juicedata/juicefs/pkg/version
ldf="-s -w -X $pkg.revision=e0032b2 -X $pkg.revisionDate=2025-12-02 -linkmode external -extldflags -static"
mkdir -p "$out.tmp"
export CGO_ENABLED=1
go build -trimpath -tags netgo,osusergo,sqlite_omit_load_extension -ldflags "$ldf" -o "$out.tmp/juicefs" \
  github.com/juicedata/juicefs
rm -rf "$out" && mv "$out.tmp" "$out"

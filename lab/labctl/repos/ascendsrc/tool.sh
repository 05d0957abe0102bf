#!/bin/sh
# LAB FIXTURE: stand-in for the Ascend Docker Runtime programs (ascend-docker-runtime,
# ascend-docker-hook, ascend-docker-cli, ascend-docker-destroy) of the aicluster lab's stand-in
# release package (lab/labctl/repos/ascend.py). Never product code; no Huawei software.
#
# ascend-docker-runtime is an OCI runtime wrapping runc: the real one adds its prestart hook when
# ASCEND_VISIBLE_DEVICES is set and execs runc; this one hands every call to runc unchanged (no NPU
# exists in the lab). The hook, cli and destroy programs do nothing and succeed.
VERSION="@VERSION@"
name=$(basename "$0")
case "$1" in
    --version|-v|version)
        echo "${name} version: v${VERSION} (aicluster lab stand-in)"
        exit 0
        ;;
esac
case "${name}" in
    ascend-docker-runtime)
        for runc in runc /usr/bin/runc /usr/sbin/runc /usr/local/bin/runc /usr/local/sbin/runc; do
            if command -v "${runc}" >/dev/null 2>&1; then
                exec "${runc}" "$@"
            fi
        done
        echo "${name}: runc not found (aicluster lab stand-in: it hands every call to runc)" >&2
        exit 1
        ;;
    *)
        exit 0
        ;;
esac

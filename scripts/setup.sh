#!/usr/bin/env bash
# Set up what is missing on this control host: Debian packages the lab needs, the Python
# venv with the pinned toolchain, the lab CLI, and the lab's Go-built binaries (cached in
# ~/.cache/ai-cluster-lab, keyed by lab/k8sbin/go.sum). Safe to re-run: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
while read -r pkg; do
  [ -n "$pkg" ] || continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done < <(sed -e 's/#.*//' -e '/^\s*$/d' lab/apt-packages.txt)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

stamp=.venv/.requirements.sha256
want=$(cat requirements.lock lab/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the Python toolchain into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e lab
  echo "$want" > "$stamp"
fi

.venv/bin/lab build >/dev/null
# Helm v3 for kubernetes.core.helm (6.2.0 accepts Helm 3 only): on the venv's PATH.
ln -sf "$(.venv/bin/python -c 'from labctl import k8sbin; print(k8sbin.helm_path())')" .venv/bin/helm

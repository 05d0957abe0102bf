#!/usr/bin/env bash
# ansible-test sanity of the in-repo collection: every test that applies, on Python 3.11, each in a
# venv with its pinned requirements (from PyPI, cached under ~/.ansible/test). ansible-test wants the
# collection's dependencies (kubernetes.core, here from the pinned `ansible` package) in the same
# collection root, so it runs on a copy of both in a temporary root. Offline, the pip bootstrap
# script ansible-test would download is replaced by one that runs Python's own ensurepip
# (scripts/setup.sh writes it; written here too when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$PWD/.venv
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

k8s=$("$venv/bin/python" -c 'import importlib.util as u; print(list(u.find_spec("ansible_collections.kubernetes.core").submodule_search_locations)[0])')
ansible_test=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')
pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',$/\1/p" "$ansible_test/_internal/python_requirements.py")
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -f "$get_pip" ]; then
  mkdir -p -m 0700 "$(dirname "$get_pip")"
  printf 'import ensurepip\n\nensurepip.bootstrap()\n' > "$get_pip"
fi

mkdir -p "$root/ansible_collections/aicluster" "$root/ansible_collections/kubernetes"
cp -a collections/ansible_collections/aicluster/platform "$root/ansible_collections/aicluster/platform"
cp -a "$k8s" "$root/ansible_collections/kubernetes/core"
cd "$root/ansible_collections/aicluster/platform"
"$venv/bin/ansible-test" sanity --venv --python 3.11 --color no

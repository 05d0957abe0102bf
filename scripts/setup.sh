#!/usr/bin/env bash
# Set up what is missing on this control host: Debian packages the lab needs, the Python venv
# with the pinned toolchain, the lab CLI, and the lab's Go-built binaries (control plane, Helm,
# JuiceFS; cached in ~/.cache/ai-cluster-lab, keyed by their wrapper modules' go.sum). Safe to
# re-run: each step checks first.
#
# A cold run prints one line per component it builds or installs; apt's, pip's and Go's own
# output goes to lab/state/logs/setup-<time>.log (0600 in a 0700 directory, git-ignored), and a
# failure shows that log's last 30 lines. A warm run prints one line.
set -euo pipefail
cd "$(dirname "$0")/.."

state_dir=${LAB_STATE_DIR:-lab/state}
log_dir=$state_dir/logs
log=""
did=0
started=$(date +%s)

private_dir() { mkdir -p -m 0700 "$@"; chmod 0700 "$@"; }

open_log() {  # on first use only: a warm run writes no log
  [ -z "$log" ] || return 0
  private_dir "$state_dir" "$log_dir"
  log=$log_dir/setup-$(date +%Y%m%d-%H%M%S).log
  (umask 077 && : >>"$log")
  chmod 0600 "$log"
  echo "setup: tool output (apt, pip, Go) goes to $log"
}

failed() {
  echo "setup: FAILED: $1; last 30 lines of $log:" >&2
  tail -n 30 "$log" | sed 's/^/    /' >&2
  echo "setup: full log: $log" >&2
  exit 1
}

# step "what, why, rough minutes" COMMAND...: one line here, the command's output in the log.
step() {
  local what=$1
  shift
  open_log
  did=1
  echo "setup: $what ..."
  printf '\n== %s %s\n$ %s\n' "$(date '+%F %T')" "$what" "$*" >>"$log"
  "$@" >>"$log" 2>&1 </dev/null || failed "$what"
}

apt_install() {  # sudo's credentials are asked for before the step (its output goes to the log)
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

install_venv() {
  python3 -m venv .venv
  .venv/bin/pip install --disable-pip-version-check --progress-bar off -r requirements.lock
  .venv/bin/pip install --disable-pip-version-check --progress-bar off --no-deps -e lab
}

# 1. Debian packages the lab needs (podman, debootstrap, redis-server, ...).
missing=()
while read -r pkg; do
  [ -n "$pkg" ] || continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done < <(sed -e 's/#.*//' -e '/^\s*$/d' lab/apt-packages.txt)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! sudo -v; then
    echo "setup: the lab needs Debian packages: ${missing[*]}; install them (sudo apt-get install ...) and re-run" >&2
    exit 1
  fi
  step "installing ${#missing[@]} Debian package(s) the lab runs on (${missing[*]}) with apt (~2 min)" \
    apt_install "${missing[@]}"
fi

# 2. The Python toolchain, pinned by requirements.lock, and the lab CLI.
stamp=.venv/.requirements.sha256
want=$(cat requirements.lock lab/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing the Python toolchain (Ansible, ansible-lint, Molecule, pytest, kubernetes client; requirements.lock) and the lab CLI into .venv with pip (~2 min, cold)" \
    install_venv
  echo "$want" > "$stamp"
fi

# 3. The lab's Go binaries: labctl prints one line per component and sends Go's output to our log.
if ! .venv/bin/lab build --check; then
  open_log
  did=1
  LAB_BUILD_LOG=$(realpath "$log") .venv/bin/lab build --log-prefix setup >/dev/null ||
    failed "building the lab's Go binaries"
fi
# Helm v3 for kubernetes.core.helm (6.2.0 accepts Helm 3 only): on the venv's PATH.
ln -sfn "$(.venv/bin/python -c 'from labctl import k8sbin; print(k8sbin.helm_path())')" .venv/bin/helm

# 4. ansible-test bootstraps pip in its sanity venvs with a get-pip script it downloads; the
# internet is closed here, so give it one that bootstraps pip offline (the name follows the pip
# version of .venv's ansible-test).
pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" .venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py 2>/dev/null | head -n1)
if [ -n "$pip_version" ]; then
  get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
  content=$'# Offline stand-in for get-pip.py: ansible-test runs this to put pip into a fresh venv.\nimport ensurepip\n\nensurepip.bootstrap()'
  private_dir "$(dirname "$get_pip")"
  if [ ! -f "$get_pip" ] || [ "$(cat "$get_pip")" != "$content" ]; then
    printf '%s\n' "$content" >"$get_pip.tmp" && chmod 0644 "$get_pip.tmp" && mv -f "$get_pip.tmp" "$get_pip"
    echo "setup: offline pip bootstrap for ansible-test: $get_pip"
    did=1
  fi
fi

# 5. Private local state: the lab's state dir is 0700 (Ansible keeps facts in memory only).
private_dir "$state_dir"

if [ "$did" -eq 0 ]; then
  echo "setup: everything present (Debian packages, .venv, lab binaries in ~/.cache/ai-cluster-lab)"
else
  elapsed=$(( $(date +%s) - started ))
  echo "setup: done in $((elapsed / 60))m$((elapsed % 60))s${log:+ (log: $log)}"
fi

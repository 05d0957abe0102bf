# The two commands a newcomer needs:
#   make site   set up what is missing, bring the lab up, run site.yml against it
#   make test   everything CI runs: lint, unit, lab integration, Molecule
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR := false
PYTEST := $(VENV)/bin/pytest
ROLES_WITH_MOLECULE := $(patsubst %/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml))

.PHONY: site test setup lab-up lab-down lint unit integration molecule

site: setup lab-up
	ansible-playbook site.yml -i inventory/lab
	lab summary

test: setup lint unit lab-up integration molecule

setup:
	@scripts/setup.sh

lab-up:
	lab up

lab-down:
	lab down

lint:
	ruff check .
	yamllint -s .
	ansible-lint --profile production

unit:
	$(PYTEST) -q -m "not lab" tests/unit tests/lab

integration:
	$(PYTEST) -q -m lab tests/integration

# The chain scenario (molecule/default: site.yml on a fresh lab) first, then each role's own.
molecule:
	molecule reset && molecule test
	@set -e; for role in $(ROLES_WITH_MOLECULE); do \
	  echo "== molecule: $$role"; (cd $$role && molecule reset && molecule test); \
	done

# ansible-test sanity of the in-repo collection: every test that applies, on Python 3.11, each in a venv
# with its pinned requirements (from PyPI, cached under ~/.ansible/test). ansible-test wants the
# collection's dependencies (kubernetes.core, here from the pinned `ansible` package) in the same
# collection root, so it runs on a copy of both in a temporary root. Offline, the pip bootstrap script it
# would download is replaced by one that runs Python's own ensurepip.
.PHONY: sanity
sanity:
	@set -e; root=$$(mktemp -d); trap 'rm -rf "$$root"' EXIT; \
	k8s=$$($(VENV)/bin/python -c 'import importlib.util as u; print(list(u.find_spec("ansible_collections.kubernetes.core").submodule_search_locations)[0])'); \
	pip=$$(sed -n "s/^ *pip='\([0-9.]*\)',$$/\1/p" $$($(VENV)/bin/python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py); \
	getpip=$$HOME/.ansible/test/cache/get_pip_$$(echo $$pip | tr . _).py; \
	mkdir -p "$$root/ansible_collections/aicluster" "$$root/ansible_collections/kubernetes" "$$(dirname $$getpip)"; \
	[ -f "$$getpip" ] || printf 'import ensurepip\n\nensurepip.bootstrap()\n' > "$$getpip"; \
	cp -a collections/ansible_collections/aicluster/platform "$$root/ansible_collections/aicluster/platform"; \
	cp -a "$$k8s" "$$root/ansible_collections/kubernetes/core"; \
	cd "$$root/ansible_collections/aicluster/platform" && $(VENV)/bin/ansible-test sanity --venv --python 3.11 --color no

# The two commands a newcomer needs:
#   make site   set up what is missing, bring the lab up, run site.yml against it
#   make test   everything CI runs: lint, ansible-test sanity, unit, lab integration, Molecule
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR := false
PYTEST := $(VENV)/bin/pytest
ROLES_WITH_MOLECULE := $(patsubst %/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml))

.PHONY: site test setup lab-up lab-down lint sanity unit integration molecule

site: setup lab-up
	ansible-playbook site.yml -i inventory/lab
	lab summary

test: setup lint sanity unit lab-up integration molecule

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

# --durations: the slowest tests' times in the log, to keep the suite's time in check.
integration:
	$(PYTEST) -q -m lab --durations=15 tests/integration

# The chain scenario (molecule/default: site.yml on a fresh lab) first, then each role's own.
# Each scenario's seconds go to the log, to keep the suite's time in check.
molecule:
	@start=$$(date +%s); molecule reset && molecule test; echo "== molecule: chain scenario $$(( $$(date +%s) - start ))s"
	@set -e; for role in $(ROLES_WITH_MOLECULE); do \
	  echo "== molecule: $$role"; start=$$(date +%s); (cd $$role && molecule reset && molecule test); \
	  echo "== molecule: $$role $$(( $$(date +%s) - start ))s"; \
	done

# ansible-test sanity of the in-repo collection (how and why: scripts/sanity.sh).
sanity:
	@scripts/sanity.sh

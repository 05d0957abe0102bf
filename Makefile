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
# Roles whose whole scenario (converge, idempotence, the verify's behaviour, removal) an integration test module
# also runs against the same lab: CI's `make test` leaves their scenario to `make molecule-all` to stay within its
# time budget. Each names the tests that cover it.
#   roles/mindcluster            tests/integration/test_npu_stage.py (install, placement, NPUs, --check, removal)
#   roles/nvidia_device_plugin   tests/integration/test_gpu_stage.py (placement, GPUs, --check, bad input, removal)
#   roles/rancher_worker         tests/integration/test_rancher_worker_rke1.py, test_rancher_worker_bad_input.py,
#                                test_bootstrap_chain.py (RKE2 join from zero, re-run, add and remove a machine)
#   roles/data_storage           tests/integration/test_bootstrap_chain.py, test_data_storage_bad_input.py
MOLECULE_IN_INTEGRATION := roles/mindcluster roles/nvidia_device_plugin roles/rancher_worker roles/data_storage
MOLECULE_ROLES := $(filter-out $(MOLECULE_IN_INTEGRATION),$(ROLES_WITH_MOLECULE))

.PHONY: site test checks setup lab-up lab-down lint sanity unit unit-collection unit-lab unit-lab-live integration \
	molecule molecule-all molecule-roles

site: setup lab-up
	ansible-playbook site.yml -i inventory/lab
	lab summary

test: setup checks lab-up integration molecule

# The checks that need no lab, side by side (each one's output kept together in the log): the lab's own tests
# mostly wait on the control planes they start, while lint, sanity and the collection's tests use the CPUs.
checks:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory --output-sync=target -j5 lint sanity unit-collection unit-lab unit-lab-live; \
	echo "== checks (lint, sanity, unit): $$(( $$(date +%s) - start ))s"

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

unit: unit-collection unit-lab unit-lab-live

unit-collection:
	$(PYTEST) -q -m "not lab" -p no:cacheprovider tests/unit

# The lab's tests that start real control planes and controllers of their own (each on its own ports).
LAB_LIVE_TESTS := $(wildcard tests/lab/test_*_live.py) tests/lab/test_volcano_profile.py \
	tests/lab/test_apiserver_restart.py tests/lab/test_repo_charts.py

unit-lab:
	$(PYTEST) -q -m "not lab" -p no:cacheprovider tests/lab $(addprefix --ignore=,$(LAB_LIVE_TESTS))

unit-lab-live:
	$(PYTEST) -q -m "not lab" -p no:cacheprovider --durations=5 $(LAB_LIVE_TESTS)

# --durations: the slowest tests' times in the log, to keep the suite's time in check.
integration:
	$(PYTEST) -q -m lab --durations=15 tests/integration

# The chain scenario (molecule/default: site.yml on a fresh lab) first, then each role's own (CI: the roles whose
# scenario no integration test module runs, MOLECULE_ROLES; `make molecule-all`: every role's).
# Each scenario's seconds go to the log, to keep the suite's time in check.
molecule:
	@start=$$(date +%s); molecule reset && molecule test; echo "== molecule: chain scenario $$(( $$(date +%s) - start ))s"
	@$(MAKE) --no-print-directory molecule-roles ROLES="$(MOLECULE_ROLES)"

molecule-all:
	@$(MAKE) --no-print-directory molecule-roles ROLES="$(ROLES_WITH_MOLECULE)"

molecule-roles:
	@set -e; for role in $(ROLES); do \
	  echo "== molecule: $$role"; start=$$(date +%s); (cd $$role && molecule reset && molecule test); \
	  echo "== molecule: $$role $$(( $$(date +%s) - start ))s"; \
	done

# ansible-test sanity of the in-repo collection (how and why: scripts/sanity.sh).
sanity:
	@scripts/sanity.sh

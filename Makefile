# The two commands: `make lab` and `make test`. Everything CI does is in here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KERNEL := $(VENV)/share/jupyter/kernels/vosapp/kernel.json
STAMP := $(VENV)/.vosapp-installed
PYTEST_ARGS ?=

.PHONY: lab test setup sysdeps kernel bench docs notebooks lint clean

lab: setup ## install what is missing, then open JupyterLab on notebooks/
	$(VENV)/bin/vosapp lab

test: setup ## install what is missing, type-check, then run the whole suite (notebooks included)
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

setup: sysdeps $(STAMP) $(KERNEL)

sysdeps:
	@bash scripts/sysdeps.sh

# setup.py and the compiled sources: the install builds the transcoder's C lane, the relay's hub
# and (mypyc) the SIP layer's per-message modules and the switch layer's request path in
# place (on Linux with GCC profile-guided: built, trained by vosapp/compiled_training.py,
# built again from the counts; VOSAPP_PGO=0 builds once), so a change to any must run it
# again. (A compiled module's source changed without it runs from source, with a warning:
# vosapp/compiled.py.) Every source of the directories that hold compiled modules (the list of
# compiled ones lives in vosapp/compiled.py; the others are what they were type-checked
# against).
COMPILED_SOURCES := vosapp/compiled.py vosapp/compiled_training.py $(wildcard vosapp/sip/*.py vosapp/switch/*.py vosapp/switch/registrar/*.py)
$(STAMP): pyproject.toml setup.py vosapp/media/codecs/_g729lane.c vosapp/media/codecs/_g729lane.h vosapp/io/_rtphub.c vosapp/sip/_scan.c $(COMPILED_SOURCES)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[lab,test]'
	@touch $@

# `kernelspec install` copies kernel.json with its original mtime, older than $(STAMP): the
# touch makes the installed copy newer, so a second `make lab` installs nothing.
$(KERNEL): kernels/vosapp/kernel.json $(STAMP)
	$(VENV)/bin/jupyter kernelspec install --sys-prefix --replace --name vosapp kernels/vosapp >/dev/null
	@touch $@
	@echo "kernelspec 'vosapp' installed in $(VENV)"

docs: setup ## regenerate docs/parameters.md from the registry, docs/benchmarks.md's contents list and the README's pictures
	$(VENV)/bin/vosapp params doc > docs/parameters.md
	$(PY) -m vosapp.lab.docs_contents docs/benchmarks.md
	$(PY) -m vosapp.lab.docs_images docs/img

notebooks: setup ## rewrite notebooks/*.ipynb from their notebooks/*.py sources (no outputs)
	$(PY) -m vosapp.lab.notebook_sources

# The benchmarks' entry points. bench/ also holds their helpers (common.sh, sipp_stats.py,
# instruction_count.py (valgrind's counts, for registrar_instructions.py and calls_instructions.py),
# syscall_counts.py (strace's summaries as system calls per registration, for registrar_syscalls.sh),
# registrar_setup.py (the registrar benches' accounts and Kamailio's SQLite table),
# backlog_sampler.py, reuseport_serve.py, python_floor_registrar.py,
# python_minimum_registrar.py, release_timing/: vosapp serve's memory releases timed under any
# bench, loop_stalls/: what holds vosapp serve's event loop, under any bench), media_calls.sh
# (media_calls.py with this checkout on PYTHONPATH), and tools run by hand: media_ab.sh,
# calls_ab.sh, calls_search_ab.sh, registrar_profile_ab.sh and registrar_ab.sh (before/after
# against another revision; the Python ones through code_ab.sh; registrar_ab.sh the live
# registrar in pairs, with Kamailio's pass in each), registrar_config_ab.sh (the live registrar
# with the bench's config and with a [limits] change, in pairs), calls_profile.sh (the call path under a
# profiler; with PROFILER=py-spy its samples summed by stacks.py), b2bua_cpu.py (switch CPU per
# call on the virtual network, for comparing small cuts), b2bua_phases.py and
# registrar_stages.py (where a call's and a registration's time goes inside the switch core;
# registrar_stages.py --instructions counts a registration's stages with valgrind instead),
# media_profile.sh with media_profile.py (the switch's CPU on media calls by category, py-spy),
# gc_pauses.py (the cyclic GC's pauses per generation inside vosapp serve under media calls),
# timer_churn.py (the clock's timers: one add + cancel among 100,000 pending),
# registrar_cache_sim.py (a registration's cache misses and mispredicted branches against the
# Python minimum's, valgrind's cachegrind: ~15 min).
BENCH_PY = sip_parser via_memo serve_startup registrar_profile registrar_instructions calls_instructions unauthenticated_flood ended_call_memory media media_calls media_with_calls fd_table trace_store wal_commits dtmf codec_quality ladder
BENCH_SH = options registrar registrar_syscalls calls overload

bench: setup ## run every benchmark under bench/ (results go to docs/benchmarks.md by hand)
	@for b in $(BENCH_PY); do echo "== bench/$$b.py"; PYTHONPATH=$(CURDIR) $(PY) bench/$$b.py || exit 1; done
	@for b in $(BENCH_SH); do echo "== bench/$$b.sh"; PY=$(PY) bash bench/$$b.sh || exit 1; done

lint: setup ## ruff, and mypy as configured in pyproject.toml
	$(VENV)/bin/ruff check vosapp tests bench notebooks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache vosapp/media/codecs/_g729lane.*.so vosapp/io/_rtphub.*.so vosapp/sip/_scan.*.so
	rm -f vosapp/*.so vosapp/sip/*.so vosapp/switch/*.so vosapp/switch/registrar/*.so vosapp/compiled.sha256 vosapp/compiled.profile

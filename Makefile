# Optimization II companion. `make lab` opens the notebooks, `make test` checks everything; both set up .venv.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PY ?= python3.11
VENV = .venv
STAMP = $(VENV)/.installed-stamp
# $(wildcard): a fresh clone lacks the folders that are still empty.
SRC = $(wildcard lecture_lib tests benchmarks notebooks)
NOTEBOOK_FILES = $(wildcard notebooks/*.ipynb)

# JAX's persistent compilation cache: a notebook's second run skips most compiles.
JAX_CACHE_ENV = JAX_COMPILATION_CACHE_DIR=$(CURDIR)/.jax_cache \
	JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1

# pip warns about every unusable find-links location; drop those lines, keep everything else and pip's exit code.
PIP_QUIET = 2>&1 | { grep -v 'is ignored: it is neither' || true; }

.PHONY: help venv lab test present site bench format clean student

help:
	@echo "make lab     set up .venv if needed, then open the notebooks in JupyterLab"
	@echo "make test    set up .venv if needed, then run tests/ and every notebook (nbval)"
	@echo "make present start Voila on 127.0.0.1: the notebooks as apps, code hidden, projector fonts, offline"
	@echo "make site    build static, offline HTML pages of every notebook into site/"
	@echo "make bench   run benchmarks/ and write the performance table (QUICK=1: under a minute)"
	@echo "make format  strip notebook outputs (nbstripout), ruff format, ruff check --fix"
	@echo "make student write student copies of the notebooks (answers replaced by stubs) into student/"
	@echo "make venv    create .venv and install the package with its [test] extra (PY=$(PY))"
	@echo "make clean   remove .venv and caches"

venv: $(STAMP)

# Rebuilt only when pyproject.toml changes; the stamp lives inside .venv, so deleting .venv resets it.
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || { echo "creating $(VENV) with $(PY)"; $(PY) -m venv $(VENV); }
	$(VENV)/bin/python -m pip install -q --upgrade pip $(PIP_QUIET)
	$(VENV)/bin/python -m pip install -q -e '.[test]' $(PIP_QUIET)
	@touch $@

# Jupyter refuses to run as root (containers, CI) unless told.
lab: $(STAMP)
	$(JAX_CACHE_ENV) $(VENV)/bin/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

# The three suites run even when one fails; the target fails if any does (exit 5, nothing collected,
# counts as a failure). tests/test_browser_*.py need Debian's Chromium (`apt-get install chromium`; .ci/run
# installs it): without it they fail with that hint, never skip. They start Voila and JupyterLab on 127.0.0.1
# and take 5-8 minutes on 2 cores. BROWSER_LATENCY=benchmarks/browser_latency.md writes the slider-latency table.
# Voila and JupyterLab pages run one at a time, after the parallel tests: a starved CPU can push a figure past
# anywidget's 2 s initialisation limit (see README, presenter mode).
BROWSER_TESTS = tests/test_browser_voila.py tests/test_browser_lab.py
test: $(STAMP)
	@rc=0; \
	$(VENV)/bin/python -m pytest -n 2 tests $(BROWSER_TESTS:%=--ignore=%) || rc=1; \
	$(VENV)/bin/python -m pytest $(BROWSER_TESTS) || rc=1; \
	$(JAX_CACHE_ENV) $(VENV)/bin/python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
		notebooks || rc=1; \
	exit $$rc

# Voila with the project's offline template (share/jupyter/voila/templates/lecture, found through JUPYTER_PATH),
# on 127.0.0.1; prints the address. Options: python -m lecture_lib.present --help (--port, --theme dark, ...).
present: $(STAMP)
	$(JAX_CACHE_ENV) JUPYTER_PATH=$(CURDIR)/share/jupyter $(VENV)/bin/python -m lecture_lib.present notebooks

site: $(STAMP)
	$(JAX_CACHE_ENV) $(VENV)/bin/python -m lecture_lib.site notebooks site

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run.py $(if $(QUICK),--quick)

# ruff check runs last: what it cannot fix stops make with the list of findings.
format: $(STAMP)
ifneq ($(NOTEBOOK_FILES),)
	$(VENV)/bin/nbstripout $(NOTEBOOK_FILES)
endif
	$(VENV)/bin/python -m ruff format $(SRC)
	$(VENV)/bin/python -m ruff check --fix $(SRC)

student: $(STAMP)
	$(VENV)/bin/python -m lecture_lib.student notebooks student

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

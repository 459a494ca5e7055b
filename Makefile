# Two commands: `make book` builds the whole book on the embedded demo cohort,
# `make test` runs the tests. Both create/reuse .venv with only Python 3.11 and the registry.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONUNBUFFERED := 1
export HF_HUB_OFFLINE ?= 1
# constraints.txt pins the tested versions (torch 2.14.1 + torchvision 0.29.1, CPU here).
PIP := $(PY) -m pip install --disable-pip-version-check -q

.PHONY: book book-check test venv demo clean bench lint

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) -c constraints.txt -e ".[test]"
	@touch $@

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -p no:cacheprovider

book: $(STAMP)
	$(PY) -m fusion_book.build

book-check: $(STAMP)
	$(PY) -m fusion_book.check _build/html

demo: $(STAMP)
	$(PY) -m fusion_utils.data.demo data/demo

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(PY) -m ruff check fusion_utils tests benchmarks notebooks

clean:
	rm -rf _build book/executed runs cache data/demo

# Two commands: `make book` builds the whole book on the embedded demo cohort,
# `make test` runs the tests. Both create/reuse .venv with only Python 3.11 and the registry.
# After `make book`: `make pdf` prints the book into one PDF (headless Chromium, offline) and
# `make publish` pushes the built HTML to the gh-pages branch (ghp-import).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONUNBUFFERED := 1
export HF_HUB_OFFLINE ?= 1
# The built book (make pdf, make publish) and where the PDF goes.
BOOK_HTML ?= _build/html
BOOK_PDF ?= _build/pdf/book.pdf
PUBLISH_BRANCH ?= gh-pages
# constraints.txt pins the tested versions (torch 2.14.1 + torchvision 0.29.1, CPU here).
PIP := $(PY) -m pip install --disable-pip-version-check -q

.PHONY: book book-check test venv demo clean bench lint pdf publish

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

pdf: $(STAMP)
	@test -f $(BOOK_HTML)/index.html || { echo "make pdf: no built book in $(BOOK_HTML): run make book first" >&2; exit 1; }
	$(PY) -m fusion_book.pdf $(BOOK_HTML) -o $(BOOK_PDF)
	$(PY) -m fusion_book.pdf $(BOOK_HTML) --check $(BOOK_PDF)

# Checks for the built book first (no install, no push without it); .nojekyll keeps _static.
publish:
	@test -f $(BOOK_HTML)/index.html || { echo "make publish: no built book in $(BOOK_HTML): run make book first" >&2; exit 1; }
	$(VENV)/bin/ghp-import --no-jekyll --push --force --branch $(PUBLISH_BRANCH) \
	  --message "Book built from $$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" $(BOOK_HTML)

demo: $(STAMP)
	$(PY) -m fusion_utils.data.demo data/demo

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(PY) -m ruff check fusion_utils fusion_book tests benchmarks notebooks

clean:
	rm -rf _build book/executed runs cache data/demo

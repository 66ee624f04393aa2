# Two commands: `make verify` (check every theorem, write the report and appendix) and
# `make test` (the test suite). Both create .venv/ on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: verify verify-quick test test-all lint mutants bench reproduce reproduce-quick docs-figure wheel wheel-check clean

VERIFY_FLAGS ?=

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps pytorchcv==0.0.74
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

verify: $(STAMP)
	$(BIN)/vitconv verify $(VERIFY_FLAGS)

verify-quick: $(STAMP)
	$(BIN)/vitconv verify --quick $(VERIFY_FLAGS)

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

lint: $(STAMP)
	$(BIN)/ruff check .

# The mutation gate: every catalogue mutant must make `vitconv verify --quick` fail, and every
# obligation must be failed by some mutant (tests/mutants/; results in out/mutants/).
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants.gate

bench: $(STAMP)
	$(BIN)/vitconv bench

reproduce: $(STAMP)
	$(BIN)/vitconv reproduce

reproduce-quick: $(STAMP)
	$(BIN)/vitconv reproduce --quick

# The wheel is the product: build the sdist and wheel into out/dist/, install the wheel
# into a fresh virtual environment (pinned CPU torch via the constraints) and run it from
# a folder with no source tree: `vitconv --version`, `verify --quick`, a conversion, and
# `import numeric` must fail (one namespace).
WHEEL_ENV := out/wheel-venv
wheel: $(STAMP)
	rm -rf out/dist
	$(BIN)/python -m build --no-isolation --outdir out/dist .

wheel-check: wheel
	rm -rf $(WHEEL_ENV) out/wheel-run
	$(PYTHON) -m venv $(WHEEL_ENV)
	$(WHEEL_ENV)/bin/python -m pip install --quiet --upgrade pip
	$(WHEEL_ENV)/bin/python -m pip install --quiet --constraint requirements-dev.txt out/dist/*.whl
	mkdir -p out/wheel-run
	cd out/wheel-run && ../wheel-venv/bin/python $(CURDIR)/.ci/wheel_smoke.py

# The one generated file the repository keeps: the README's figure.
docs-figure: $(STAMP)
	$(BIN)/python -c "from pathlib import Path; from vitconv.report.figures import heads_vs_kernel; heads_vs_kernel(Path('docs'))"

clean:
	rm -rf out .pytest_cache .ruff_cache .hypothesis

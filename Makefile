# Two entry points: `make demo` (the offline rehearsal) and `make test`. Both create the virtual
# environment on first use and reuse it while requirements.txt is unchanged.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	cp requirements.txt $(STAMP)

demo: $(STAMP)
	$(BIN)/python build_kernel.py --demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks

lint: $(STAMP)
	$(BIN)/ruff check steelkit tests build_kernel.py

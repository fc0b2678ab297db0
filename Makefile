# Two entry points: `make demo` (a slice of the offline rehearsal) and `make test`; `make rehearse` runs every
# kernel's tiny twin. They create the virtual environments on first use and reuse them while their records are
# unchanged: .venv/ from requirements.txt, .venv-kaggle/ (Kaggle's image, where notebooks are rehearsed) from
# kernels/kaggle-image.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAGGLE_STAMP := .venv-kaggle/kaggle-image.txt

.PHONY: demo rehearse test bench lint gpu-wheels gpu-check

# uv (steelkit_kaggle/install.py) unpacks each wheel once and hard-links it into both environments
$(STAMP): requirements.txt
	$(PYTHON) -m steelkit_kaggle.install $(VENV) -r requirements.txt
	cp requirements.txt $(STAMP)

$(KAGGLE_STAMP): kernels/kaggle-image.txt $(STAMP)
	$(BIN)/python -c "from steelkit_kaggle import image; image.ensure()"

demo: $(STAMP) $(KAGGLE_STAMP)
	$(BIN)/python build_kernel.py demo --out demo-output

rehearse: $(STAMP) $(KAGGLE_STAMP)
	$(BIN)/python build_kernel.py rehearse --out rehearsal

test: $(STAMP) $(KAGGLE_STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks

lint: $(STAMP)
	$(BIN)/ruff check steelkit steelkit_kaggle tests build_kernel.py

# What only a GPU shows (tests/gpu.py). On a machine whose Python lacks smp, albumentations or
# iterative-stratification and reaches no registry: `make gpu-wheels` here, carry gpu-wheels/ there, then
# `make gpu-check` there (the wheels go to a private target, .gpu-site/; no virtual environment is made).
GPU_CHECK ?= gpu-check.json
gpu-wheels: $(STAMP)
	$(BIN)/python -m tests.gpu_wheels --out gpu-wheels

gpu-check:
	if [ -d gpu-wheels ]; then $(PYTHON) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
		--upgrade --target .gpu-site gpu-wheels/*.whl; fi
	PYTHONPATH=.gpu-site:. PYTHONUNBUFFERED=1 $(PYTHON) -m tests.gpu --out $(GPU_CHECK)

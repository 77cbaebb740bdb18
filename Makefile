# Two entry points a new user needs: `make demo` and `make test`. Both create ./.venv and install what they need.
# PyTorch: with no NVIDIA GPU we install the CPU build pinned below (fast, no CUDA download); with a GPU, the
# newest release that pyproject.toml allows. Override with `make TORCH='torch==2.5.1' test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
TORCH  ?= $(shell if command -v nvidia-smi >/dev/null 2>&1; then echo 'torch>=2.2,<3'; else echo 'torch==2.13.0'; fi)

.PHONY: demo test lint install
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/frugalseg demo --out frugalseg-demo --overwrite

test: install
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/mypy

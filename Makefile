# Assemble-TF: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt pyproject.toml | sha1sum | cut -c1-12)
DEMO_DIR ?= demo_out

.PHONY: venv test test-fast demo presets lint format clean

# Python writes each module's bytecode the first time a process imports
# it, also where PYTHONDONTWRITEBYTECODE is set (this project's machines):
# without it every process compiled TensorFlow from source, 5 s more each
# (make test took 90 s more). Lazily, not all of site-packages at install
# (compileall: 22 s on 2 cores, most of it for modules no job imports) and
# not pip's one file at a time (68 s of install against 37).
export PYTHONDONTWRITEBYTECODE :=

venv: $(STAMP)

# tensorflow==2.21.0 has wheels for Python 3.11-3.13: say so before pip
# fails with "No matching distribution found".
PYTHON_CHECK := import sys; v = sys.version_info[:2]; \
	sys.exit(None if (3, 11) <= v <= (3, 13) else \
	"Python %d.%d ($(PYTHON)): tensorflow==2.21.0 needs Python 3.11-3.13; " \
	"run make PYTHON=python3.12 (or another of them)." % v)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -c '$(PYTHON_CHECK)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -r requirements.txt
	# Data-only wheels (the release's frost photos), without their
	# dependencies: imagecorruptions would pull in opencv-python.
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	# The project itself, editable: `import assemble_tf` and
	# `python -m tools.NAME` work from any folder.
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# All tests under TensorFlow, then the backend-neutral ones (tests/backends)
# again under JAX on two virtual CPU devices (data parallel). The slowest
# files are collected first (tests/conftest.py) and an idle worker steals
# queued tests from the other (--dist worksteal). XLA compiles for CPU fast
# rather than well in both passes (tests/conftest.py TEST_XLA_FLAGS).
JAX_ENV := KERAS_BACKEND=jax \
	XLA_FLAGS=--xla_force_host_platform_device_count=2

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist worksteal --durations=15 tests
	$(JAX_ENV) $(PY) -m pytest -n 2 --dist worksteal --durations=5 \
		tests/backends

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist worksteal -m "not slow" tests
	$(JAX_ENV) $(PY) -m pytest -n 2 --dist worksteal -m "not slow" \
		tests/backends

demo: $(STAMP)
	$(PY) -m tools.demo --output_dir=$(DEMO_DIR)

presets: $(STAMP)
	$(PY) -m tools.preset_table --output_dir=$(DEMO_DIR)/presets

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(DEMO_DIR) .pytest_cache

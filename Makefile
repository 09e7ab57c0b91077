# Two commands, both from a fresh clone:
#   make run    JupyterLab on notebooks/quickstart.ipynb against a local VLM server it starts
#   make test   everything CI checks: ruff, mypy, pytest (real JupyterLab, Chromium, llama-server)
# and, while working on the code:
#   make test-fast   the tests that need neither Chromium nor llama-server (about a minute)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast lint pytest system-deps llama-server clean

# A virtualenv with the package (editable) and what the tests and the demo need.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages: Chromium for the browser tests, a C++ toolchain to build llama-server, Node and
# npm for the JS checks in `make lint`.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	command -v ninja >/dev/null || missing="$$missing ninja-build"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing fonts-dejavu-core; \
	fi

# Built once per llama.cpp version into ~/.cache/rtvlm-widget (RTVLM_CACHE_DIR), outside the clone.
llama-server: $(STAMP) system-deps
	$(PY) -m tests.servers.llama_build

run: $(STAMP) system-deps
	$(PY) -m tests.servers.demo

# The JS dev tools (TypeScript's checker, ESLint), as js/package-lock.json pins them: installed
# again only when the lock file is newer than what npm last installed. ESLint 9, not 10: it still
# runs on Debian 12's own Node 18. Users get the plain ES modules and need none of this.
JS_TOOLS := js/node_modules/.package-lock.json

$(JS_TOOLS): js/package-lock.json | system-deps
	cd js && npm ci --no-audit --no-fund --silent
	touch $@

# The JS is type-checked from its JSDoc (js/tsconfig.json: checkJs, strict, noEmit) and linted.
lint: $(STAMP) $(JS_TOOLS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd js && node_modules/.bin/tsc -p . && node_modules/.bin/eslint .

pytest: $(STAMP) llama-server
	$(PY) -m pytest

test: lint pytest

# No llama-server build, no Chromium: conftest's --fast deselects the tests that use them and says how many.
test-fast: $(STAMP)
	$(PY) -m pytest --fast

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache .mypy_cache .ruff_cache

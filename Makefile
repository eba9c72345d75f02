# `make run`: create .venv if missing, install, start the app on 127.0.0.1 (demo detector, sample scene).
# `make test`: the same install, plus Debian's chromium for the browser test; lint and run every test.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run serve browser test lint format bench

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

run: $(STAMP)
	$(PY) -m sodviz serve

# `make serve HOST=0.0.0.0 ROOTS="--root /srv/models --root /srv/data"`: the app for others (docs/serving.md).
HOST ?= 0.0.0.0
serve: $(STAMP)
	$(PY) -m sodviz serve --host $(HOST) $(ROOTS)

# The real-browser test drives Debian's chromium; installed here when missing (as root, or it says so).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "could not install chromium and chromium-driver: the browser test will skip (and fail under CI)"

test: lint browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest --durations=15

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_inference.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_app.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_vicrop.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_erf.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_modules.py

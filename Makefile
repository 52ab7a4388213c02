# Two commands do all set-up on a fresh machine: `make test` and `make demo`.
# Both create .venv when it is missing: torch (the local CPU wheel) first, then the project.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lifevault-installed

.PHONY: test demo bench lint clean browser

$(STAMP): pyproject.toml setup.py ingest/_records.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The report's browser test renders the HTML in Debian's chromium (driven by Playwright, no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed; the report's browser test will be skipped"; fi; }

test: $(STAMP) browser
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/lifevault demo $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) demo-home .pytest_cache

# Two commands do all set-up on a fresh machine: `make test` and `make demo`.
# Both create .venv when it is missing: torch (the local CPU wheel) first, then the project.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lifevault-installed

.PHONY: test demo bench lint clean browser fuzz

$(STAMP): pyproject.toml setup.py ingest/_records.c embeddings/_gemm.c
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

# The parser fuzz harness at length (LIFEVAULT_FUZZ_EXAMPLES per property), with the Records.json C fast path
# built under AddressSanitizer into the venv and loaded by the test (the installed module is left alone).
FUZZ_EXAMPLES ?= 500
# The properties that reach the C module run under ASan; the others without it (with libasan preloaded
# every allocation of the interpreter, numpy and polars goes through ASan's allocator: many times slower).
FUZZ_NATIVE := records or archive
ASAN_SO := $(VENV)/asan/_records.so
fuzz: $(STAMP)
	@mkdir -p $(dir $(ASAN_SO))
	$(CC) -shared -fPIC -O1 -g -fsanitize=address -fno-omit-frame-pointer -std=c11 -Wall -Wextra \
	  -I"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" ingest/_records.c -o $(ASAN_SO)
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  LIFEVAULT_RECORDS_ASAN=$(ASAN_SO) LIFEVAULT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(PY) -m pytest -q -p no:cacheprovider tests/ingest/test_fuzz_parsers.py -k "$(FUZZ_NATIVE)"
	LIFEVAULT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(PY) -m pytest -q -p no:cacheprovider tests/ingest/test_fuzz_parsers.py -k "not ($(FUZZ_NATIVE))"

demo: $(STAMP)
	$(VENV)/bin/lifevault demo $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# ruff over the tree; mypy over the packages (strict on vault/ and api/; the config is in pyproject.toml)
TYPED := vault ingest synth embeddings federated api reports lifevault tools bench
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(TYPED)

clean:
	rm -rf $(VENV) demo-home .pytest_cache

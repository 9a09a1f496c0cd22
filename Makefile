# Everything CI and a new user need: `make demo`, `make test`, `make check`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-e2e chromium check lint format clean bench

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

# The daemon + webserver end-to-end tests take ~6 minutes on their own; CI runs both targets.
test: $(STAMP)
	$(BIN)/pytest -q --ignore=ingest_assets_tests/e2e

# The browser test needs Debian's `chromium`: installed here when missing (as root, or with sudo).
test-e2e: $(STAMP) chromium
	$(BIN)/pytest -q ingest_assets_tests/e2e

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
	rm -rf $(VENV) .ingest .pytest_cache .ruff_cache .mypy_cache

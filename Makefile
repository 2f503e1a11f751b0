# The two commands: `make demo` runs the product, `make test` runs the whole suite.
# Both create the virtual environment first (`make install`), so each works on a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install chromium redis demo test screenshots lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The Python client (its own package; the example strategy and its tests use it).
	$(BIN)/python -m pip install --quiet -e clients/python
	@$(MAKE) --no-print-directory chromium
	@touch $(STAMP)

# The browser of the end-to-end tests: Debian's Chromium, installed when missing and we may.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the end-to-end tests"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1)) || \
	  echo "chromium could not be installed: the end-to-end tests will say so and skip"; \
	else echo "no chromium (install it: apt-get install chromium); the end-to-end tests will skip"; fi
	@# Korean text in the screenshots (tests/e2e/test_screenshots.py) needs a CJK font.
	@if fc-list 2>/dev/null | grep -qi 'noto.*cjk'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's fonts-noto-cjk for the screenshots' Korean text"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk >/dev/null 2>&1)) || \
	  echo "fonts-noto-cjk could not be installed: Korean text in screenshots shows as boxes"; \
	else echo "no CJK font (install it: apt-get install fonts-noto-cjk); Korean text in screenshots shows as boxes"; fi

# Redis on 127.0.0.1:6379, for the shared rate limits (GATEWAY_REDIS_URL) and their tests: started
# in the background when nothing answers there and redis-server is installed.
redis:
	@if command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then :; \
	elif command -v redis-server >/dev/null 2>&1; then \
	  echo "starting redis-server on 127.0.0.1:6379"; \
	  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null; \
	  for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done; \
	else echo "no redis-server (install it: apt-get install redis-server); the Redis tests will fail"; fi

demo: install
	$(BIN)/gateway demo

test: install redis
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# The README's pictures of the console (docs/screenshots/), taken by the browser tests.
screenshots: install
	GATEWAY_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/e2e/test_screenshots.py

lint: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

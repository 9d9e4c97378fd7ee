#!/usr/bin/env bash
# What the browser test needs (tests/browser): Debian's chromium and Playwright for Python.
# Playwright drives /usr/bin/chromium; it never downloads a browser (no `playwright install`).
# Idempotent; apt-get needs root (CI runs as root), else it says what to run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the browser test needs Debian's chromium: sudo apt-get install chromium" >&2
        exit 1
    fi
    echo "installing chromium (apt-get)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! .venv/bin/python -c "import playwright" 2>/dev/null; then
    echo "installing Playwright for Python into .venv" >&2
    .venv/bin/python -m pip install -q -e ".[browser]"
fi

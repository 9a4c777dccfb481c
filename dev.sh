#!/usr/bin/env bash
# Set-up and entry points. Every command creates or refreshes .venv first, so a fresh machine needs nothing else.
#   ./dev.sh demo    a small real search end to end: Pareto table, plot, results under runs/demo
#   ./dev.sh test    the test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY=${PYTHON:-python3}

setup() {
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    local stamp="$VENV/.installed" want
    want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip
        # torch first: 2.13.0 is the CPU build cached on these machines; other versions download gigabytes.
        "$VENV/bin/python" -m pip install -q "torch==2.13.0"
        "$VENV/bin/python" -m pip install -q -e ".[dev]"
        echo "$want" > "$stamp"
    fi
}

# The dashboard's browser tests drive Debian's Chromium through Playwright (no browser download); without
# it they are skipped, with a message saying so. Only `test` and `setup` install it: the demo needs no browser.
browser() {
    command -v chromium >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's chromium for the dashboard's browser tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
            || echo "could not install chromium: the dashboard's browser tests will be skipped" >&2
    else
        echo "no chromium found (install it, e.g. apt-get install chromium): the dashboard's browser tests will be skipped" >&2
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
    demo) setup; exec "$VENV/bin/python" examples/demo.py "$@" ;;
    test) setup; browser
        # one pytest-xdist worker per core (NAS_TEST_WORKERS=1: one process), each test file on one worker
        workers=${NAS_TEST_WORKERS:-$(nproc 2>/dev/null || echo 1)}
        if [ "$workers" -gt 1 ]; then set -- -n "$workers" --dist loadfile "$@"; fi
        exec "$VENV/bin/python" -m pytest -q "$@" ;;
    setup) setup; browser ;;
    *) echo "usage: ./dev.sh {demo|test|setup} [args...]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# One entry point that sets everything up itself (venv, packages, Docker engine,
# images) on a fresh Debian machine as root.
#   ./run.sh demo [FAULT]   bring the testbed stack up, optionally break it, run the checks
#   ./run.sh test           lint, type-check and run the project's whole test suite
#   ./run.sh down           remove the demo stack
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY=$VENV/bin/python

setup() {
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        "$PY" -m pip install -q --disable-pip-version-check -e '.[dev]'
        touch "$stamp"
    fi
    bash testbed/engine.sh
}

case "${1:-}" in
demo)
    setup
    "$PY" -m testbed up
    if [ -n "${2:-}" ]; then
        "$PY" -m testbed inject "$2"
        echo "fault '$2' injected; './run.sh demo' again after '$PY -m testbed reset' shows it healed"
    fi
    export PGPASSWORD="$("$PY" -c "from testbed import CANARY_PASSWORD; print(CANARY_PASSWORD)")"
    set +e
    "$PY" -m pytest checks/ --stack testbed/stack.toml
    status=$?
    set -e
    echo "checks exited $status; the stack stays up: './run.sh down' removes it"
    exit "$status"
    ;;
test)
    setup
    # The alerting rules are tested with promtool (Debian's prometheus package;
    # installing it starts no server here: there is no init system).
    if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
    fi
    export STACKCHECK_REQUIRE_PROMTOOL=1
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy" src/stackcheck
    # --testbed: the integration tests bring the testbed stack up (opt-in; a bare
    # `pytest` deselects them so that it never starts containers).
    "$PY" -m pytest tests/ --testbed "${@:2}"
    ;;
down)
    "$PY" -m testbed down
    ;;
*)
    echo "usage: ./run.sh demo [FAULT] | test | down" >&2
    exit 2
    ;;
esac

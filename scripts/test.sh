#!/usr/bin/env bash
# Installs everything the tests need and runs them all: the README's test command.
# Last step: scripts/check_dist.sh builds the wheel and sdist and tests them installed.
# Usage: bash scripts/test.sh        (from the repository root, on a fresh machine)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

echo "== install (editable build of the Rust extension + test extras)"
"$PYTHON" -m pip install --upgrade pip >/dev/null
"$PYTHON" -m pip install -e ".[test]"

echo "== cargo test (kernels, no Python)"
cargo test --no-default-features

echo "== pytest"
set +e
"$PYTHON" -m pytest
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

echo "== check_dist (the wheel and the sdist, installed in fresh venvs, tested without cargo)"
PYTHON="$PYTHON" bash scripts/check_dist.sh

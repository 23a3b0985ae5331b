#!/usr/bin/env bash
# Installs the test prerequisites (tests/setup.sh), then runs every test of the workspace.
# Uses cargo-nextest when it is installed (its closing "Summary" line is what CI reads),
# otherwise `cargo test`. The exit code is the test runner's.
set -uo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh || echo "run: tests/setup.sh failed; continuing (tests needing its tools will fail or skip)" >&2

if cargo nextest --version >/dev/null 2>&1; then
  echo "run: cargo nextest run --workspace --no-fail-fast"
  cargo nextest run --workspace --no-fail-fast
  rc=$?
else
  echo "run: cargo test --workspace --all-targets --no-fail-fast"
  cargo test --workspace --all-targets --no-fail-fast
  rc=$?
fi
exit "$rc"

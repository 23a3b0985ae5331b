#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs the test prerequisites (tests/setup.sh),
# checks the house rules (formatting, clippy with warnings as errors in the desktop and the
# headless build), then runs every test of the workspace. Uses cargo-nextest when it is installed
# (its closing "Summary" line is what CI reads), otherwise `cargo test`.
#
# Each phase prints how long it took. A failed check says which one and the command that fixes
# it, and the run stops there: tests are not worth running on a tree that does not pass its rules.
# Exit code: the failed check's, else the test runner's.
set -uo pipefail
cd "$(dirname "$0")/.."
# A toolchain that tests/setup-desktop.sh installed through rustup lives here.
export PATH="$HOME/.cargo/bin:$PATH"

run_started=$SECONDS
phase_started=$SECONDS
phase() {
  printf 'run: --- %s\n' "$1"
  phase_started=$SECONDS
}
phase_done() {
  printf 'run: --- %s took %ds (%ds so far)\n' "$1" $((SECONDS - phase_started)) $((SECONDS - run_started))
}
# check NAME FIX_COMMAND -- COMMAND...: runs COMMAND; on failure names the check and its fix.
check() {
  local name=$1 fix=$2
  shift 3
  phase "$name: $*"
  "$@"
  local rc=$?
  phase_done "$name"
  if [ "$rc" -ne 0 ]; then
    printf 'run: FAILED check "%s" (exit %d). Fix with: %s\n' "$name" "$rc" "$fix" >&2
    exit "$rc"
  fi
}

phase "setup: tests/setup.sh"
tests/setup.sh || echo "run: tests/setup.sh failed; continuing (tests needing its tools will fail or skip)" >&2
phase_done "setup"

check "formatting" "cargo fmt --all" -- cargo fmt --all --check
check "clippy (desktop build, all features)" \
  "cargo clippy --workspace --all-targets --all-features --fix --allow-dirty, then the rest by hand" -- \
  cargo clippy --workspace --all-targets --all-features -- -D warnings
check "clippy (headless build)" \
  "cargo clippy --workspace --all-targets --no-default-features --fix --allow-dirty, then the rest by hand" -- \
  cargo clippy --workspace --all-targets --no-default-features -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  phase "tests: cargo nextest run --workspace --no-fail-fast"
  cargo nextest run --workspace --no-fail-fast
  rc=$?
else
  phase "tests: cargo test --workspace --all-targets --no-fail-fast"
  cargo test --workspace --all-targets --no-fail-fast
  rc=$?
fi
phase_done "tests"
printf 'run: finished in %ds, exit %d\n' $((SECONDS - run_started)) "$rc"
exit "$rc"

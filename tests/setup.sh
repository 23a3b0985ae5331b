#!/usr/bin/env bash
# Installs what the end-to-end acceptance tests need, idempotently, on Debian/Ubuntu:
#   * prometheus + promtool (Debian package `prometheus`) for tests/prometheus_server.rs
#   * the real Claude Code CLI (npm, pinned) into tests/.cache/claude-code/ for tests/claude_cli.rs
#   * ccusage (npm, pinned) into tests/.cache/ccusage/ for tests/pricing_source.rs
#   * the real Codex and Gemini CLIs (npm, pinned) into tests/.cache/{codex,gemini-cli}/ for
#     tests/agents_cli.rs
# Prints what it did. Safe to run again: it only installs what is missing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
CLAUDE_CODE_VERSION="2.1.330"
claude_prefix="$here/.cache/claude-code"
claude_bin="$claude_prefix/node_modules/.bin/claude"

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  SUDO=()
  say "not root and no password-less sudo: package installs may fail"
fi

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not available; please install: $*"
    return 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install --no-install-recommends $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Prometheus -----------------------------------------------------------------------------
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  say "prometheus already installed ($(prometheus --version 2>&1 | head -n1))"
else
  # Keep the package's own service from being started by the postinst (policy-rc.d = 101 means
  # "action forbidden"), and remove our policy afterwards only if we created it.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ] && [ -w /usr/sbin ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  rc=0
  apt_install prometheus || rc=$?
  if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || { say "installing prometheus failed"; exit "$rc"; }
  say "installed prometheus ($(prometheus --version 2>&1 | head -n1))"
fi
# The Debian package ships a service listening on :9090. The tests never use it; if it runs
# (systemd hosts), stop and disable it so it is not in the way.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  if systemctl is-active --quiet prometheus 2>/dev/null || systemctl is-enabled --quiet prometheus 2>/dev/null; then
    "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    say "stopped and disabled the prometheus system service"
  fi
fi
if [ -x /etc/init.d/prometheus ] && pgrep -x prometheus -u prometheus >/dev/null 2>&1; then
  "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  say "stopped the prometheus init.d service"
fi

# --- Claude Code CLI ------------------------------------------------------------------------
if [ -x "$claude_bin" ] && "$claude_bin" --version 2>/dev/null | grep -q "^$CLAUDE_CODE_VERSION"; then
  say "claude CLI already installed ($("$claude_bin" --version 2>/dev/null))"
else
  if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm || say "could not install nodejs/npm"
  fi
  if command -v npm >/dev/null 2>&1; then
    mkdir -p "$claude_prefix"
    say "npm install --prefix $claude_prefix @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
    if npm install --prefix "$claude_prefix" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"; then
      if "$claude_bin" --version >/dev/null 2>&1; then
        say "installed claude CLI ($("$claude_bin" --version 2>/dev/null))"
      else
        say "claude CLI installed but does not run; tests/claude_cli.rs will be skipped"
      fi
    else
      say "npm install failed (registry unreachable?); tests/claude_cli.rs will be skipped"
    fi
  else
    say "npm not available; tests/claude_cli.rs will be skipped"
  fi
fi
# --- ccusage (the price table against its source: tests/pricing_source.rs) ---------------------
# Its npm package bundles LiteLLM's prices for `--offline`; the embedded table is checked against
# them. Pinned: 20.0.26 ships no linux-x64 binary. The package's launcher runs a native binary
# from the optional dependency @ccusage/ccusage-linux-x64 (a registry package, no download).
CCUSAGE_VERSION="20.0.24"
ccusage_prefix="$here/.cache/ccusage"
ccusage_bin="$ccusage_prefix/node_modules/.bin/ccusage"
if [ -x "$ccusage_bin" ] && "$ccusage_bin" --version 2>/dev/null | grep -qx "ccusage $CCUSAGE_VERSION"; then
  say "ccusage already installed ($("$ccusage_bin" --version 2>/dev/null))"
elif command -v npm >/dev/null 2>&1; then
  mkdir -p "$ccusage_prefix"
  say "npm install --prefix $ccusage_prefix ccusage@$CCUSAGE_VERSION"
  if npm install --prefix "$ccusage_prefix" --no-audit --no-fund --loglevel=error "ccusage@$CCUSAGE_VERSION" \
      && "$ccusage_bin" --version >/dev/null 2>&1; then
    say "installed ccusage ($("$ccusage_bin" --version 2>/dev/null))"
  else
    say "installing ccusage failed (registry unreachable?); tests/pricing_source.rs will be skipped"
  fi
else
  say "npm not available; tests/pricing_source.rs will be skipped"
fi
# --- end ccusage ------------------------------------------------------------------------------
# --- Codex CLI and Gemini CLI (other agents' telemetry: tests/agents_cli.rs) --------------------
# Pinned to the versions whose export was measured (shared/reference/other-agents-telemetry.md).
# Each runs offline against a local stand-in of its model API; without it the test skips and says so.
npm_cli() { # name version prefix bin
  local pkg="$1" version="$2" prefix="$3" bin="$4"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
    say "$pkg already installed ($("$bin" --version 2>/dev/null | head -n1))"
  elif command -v npm >/dev/null 2>&1; then
    mkdir -p "$prefix"
    say "npm install --prefix $prefix $pkg@$version"
    if npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$pkg@$version" \
        && "$bin" --version >/dev/null 2>&1; then
      say "installed $pkg ($("$bin" --version 2>/dev/null | head -n1))"
    else
      say "installing $pkg failed (registry unreachable?); tests/agents_cli.rs skips it"
    fi
  else
    say "npm not available; tests/agents_cli.rs skips $pkg"
  fi
}
CODEX_VERSION="0.169.0"
GEMINI_CLI_VERSION="0.61.0"
npm_cli @openai/codex "$CODEX_VERSION" "$here/.cache/codex" "$here/.cache/codex/node_modules/.bin/codex"
npm_cli @google/gemini-cli "$GEMINI_CLI_VERSION" "$here/.cache/gemini-cli" "$here/.cache/gemini-cli/node_modules/.bin/gemini"
# --- end Codex CLI and Gemini CLI -----------------------------------------------------------------
say "done"
"$here/setup-desktop.sh" || say "tests/setup-desktop.sh failed; the desktop build and tests/desktop_*.rs need its packages"

# --- D-Bus session bus (budget alerts: tests/desktop_alerts.rs) ---------------------------------
# Each of those tests runs on its own private session bus (`dbus-run-session`) with a recording
# notification server; Debian's dbus-daemon package has both programs (older releases: `dbus`).
if command -v dbus-run-session >/dev/null 2>&1 && command -v dbus-daemon >/dev/null 2>&1; then
  say "dbus-run-session already installed"
else
  apt_install dbus-daemon || apt_install dbus || say "could not install dbus-daemon; tests/desktop_alerts.rs will fail"
fi
# --- end D-Bus session bus ------------------------------------------------------------------------

# --- Chromium + chromedriver (dashboard page in a browser: tests/dashboard_web.rs) ---------------
# The test drives Debian's headless Chromium over W3C WebDriver; both come from Debian packages.
if [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ]; then
  say "chromium + chromedriver already installed ($(/usr/bin/chromedriver --version 2>/dev/null | head -n1))"
else
  apt_install chromium chromium-driver || say "could not install chromium/chromium-driver; tests/dashboard_web.rs will fail"
fi
# --- end Chromium + chromedriver ----------------------------------------------------------------

# --- python3 (a foreign program holding a port: tests/doctor_cli.rs) ------------------------------
if command -v python3 >/dev/null 2>&1; then
  say "python3 already installed"
else
  apt_install python3 || say "could not install python3; tests/doctor_cli.rs will fail"
fi

# --- Debian package: Tauri CLI, lintian, systemd-analyze (tests/package_deb.rs, tests/systemd_unit.rs)
# The Tauri CLI from npm is a prebuilt native binary (seconds to install, where `cargo install
# tauri-cli` compiles for many minutes); pinned to the tauri crate's version in Cargo.lock.
TAURI_CLI_VERSION="2.12.5"
tauri_prefix="$here/.cache/tauri-cli"
tauri_bin="$tauri_prefix/node_modules/.bin/tauri"
if [ -x "$tauri_bin" ] && "$tauri_bin" --version 2>/dev/null | grep -qx "tauri-cli $TAURI_CLI_VERSION"; then
  say "tauri CLI already installed ($("$tauri_bin" --version 2>/dev/null))"
elif command -v npm >/dev/null 2>&1; then
  mkdir -p "$tauri_prefix"
  say "npm install --prefix $tauri_prefix @tauri-apps/cli@$TAURI_CLI_VERSION"
  if npm install --prefix "$tauri_prefix" --no-audit --no-fund --loglevel=error "@tauri-apps/cli@$TAURI_CLI_VERSION" \
      && "$tauri_bin" --version >/dev/null 2>&1; then
    say "installed tauri CLI ($("$tauri_bin" --version 2>/dev/null))"
  else
    say "installing the tauri CLI failed; tests/package_deb.rs will fail"
  fi
else
  say "npm not available; tests/package_deb.rs will fail (it needs the tauri CLI)"
fi
if command -v lintian >/dev/null 2>&1; then
  say "lintian already installed"
else
  apt_install lintian || say "could not install lintian; tests/package_deb.rs will fail"
fi
# systemd-analyze verifies the unit `serve --install-service` writes. Installing the package in
# a container starts nothing (there is no running systemd to talk to); without it the test skips
# only that check.
if command -v systemd-analyze >/dev/null 2>&1; then
  say "systemd-analyze already installed"
else
  apt_install systemd || say "could not install systemd; tests/systemd_unit.rs skips systemd-analyze verify"
fi
# --- end Debian package ----------------------------------------------------------------------------

# --- prometheus_client (Pushgateway-style pushes from Python: tests/pushgateway.rs) ---------------
# The real Python client in a venv of its own under tests/.cache/, pinned; the test runs
# tests/.cache/pushgateway-venv/bin/python and fails (not skips) without it.
PROMETHEUS_CLIENT_VERSION="0.21.1"
pyclient_venv="$here/.cache/pushgateway-venv"
if [ -x "$pyclient_venv/bin/python" ] && "$pyclient_venv/bin/python" -c "import prometheus_client, sys; sys.exit(prometheus_client.__version__ != '$PROMETHEUS_CLIENT_VERSION')" 2>/dev/null; then
  say "prometheus_client already installed ($PROMETHEUS_CLIENT_VERSION in $pyclient_venv)"
elif command -v python3 >/dev/null 2>&1; then
  { python3 -m venv "$pyclient_venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$pyclient_venv"; }; } \
    && "$pyclient_venv/bin/python" -m pip install -q --disable-pip-version-check "prometheus_client==$PROMETHEUS_CLIENT_VERSION" \
    && say "installed prometheus_client $PROMETHEUS_CLIENT_VERSION into $pyclient_venv" \
    || say "installing prometheus_client failed; tests/pushgateway.rs will fail"
else
  say "python3 not available; tests/pushgateway.rs will fail"
fi
# --- end prometheus_client ------------------------------------------------------------------------

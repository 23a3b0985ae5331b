#!/usr/bin/env bash
# Installs what the desktop (Tauri) build and its end-to-end tests need, idempotently, on
# Debian/Ubuntu:
#   * build:  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev (WebKitGTK webview, tray over D-Bus),
#             libdbus-1-dev (the keychain: Secret Service through libdbus)
#   * tests:  xvfb xauth (headless X), dbus (dbus-run-session), webkit2gtk-driver (WebKitWebDriver),
#             imagemagick (screenshots of the whole screen), dbus-x11, gnome-keyring (keychain
#             tests), openssl (a throwaway CA for the forwarding TLS test)
# tests/desktop_tray.rs and tests/desktop_window.rs fail with a pointer to this script when one of
# these is missing. Safe to run again: only missing packages are installed.
#
# `--app`: only what building and running the app needs (the build packages above, and a Rust
# toolchain through rustup when there is no cargo): the README's "run it" command.
set -euo pipefail

app_only=0
[ "${1:-}" = "--app" ] && app_only=1

say() { printf 'setup-desktop: %s\n' "$*"; }

if ! command -v dpkg-query >/dev/null 2>&1; then
  say "not a Debian/Ubuntu system; install the equivalents of: libwebkit2gtk-4.1-dev libayatana-appindicator3-dev xvfb xauth dbus webkit2gtk-driver imagemagick"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  SUDO=()
  say "not root and no password-less sudo: package installs may fail"
fi

wanted=(
  build-essential curl pkg-config libssl-dev
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev
  # The keychain (keyring crate, Secret Service over libdbus).
  libdbus-1-dev
)
if [ "$app_only" -eq 0 ]; then
  # openssl: the forwarding TLS test makes a throwaway CA with it.
  wanted+=(xvfb xauth dbus dbus-x11 webkit2gtk-driver imagemagick gnome-keyring openssl)
fi

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  say "all desktop packages already installed"
else
  say "apt-get update"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  say "apt-get install --no-install-recommends ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "installed ${missing[*]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  say "no Rust toolchain: installing it with rustup (https://rustup.rs)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  say "Rust installed in ~/.cargo; open a new shell or run: . \"\$HOME/.cargo/env\""
fi

# The house-rule checks of tests/run.sh need rustfmt and clippy (not in rustup's minimal profile).
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$app_only" -eq 0 ] && command -v rustup >/dev/null 2>&1; then
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    say "rustup component add rustfmt clippy"
    rustup component add rustfmt clippy
  fi
fi

if [ "$app_only" -eq 1 ]; then
  say "done"
  exit 0
fi

for tool in xvfb-run dbus-run-session WebKitWebDriver import; do
  if command -v "$tool" >/dev/null 2>&1; then
    say "$tool: $(command -v "$tool")"
  else
    say "$tool still missing"
  fi
done
say "done"

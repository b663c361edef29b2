#!/usr/bin/env bash
# Installs the few Debian packages the project needs beside its wheels: Open3D wants libusb and GL, Qt wants
# xkbcommon/EGL/fontconfig, the scale-out tests put nginx in front of two API replicas, the suite needs a
# PostgreSQL server (scripts/start-postgres.sh starts it for `make test`), the web app is built with Node.js/npm,
# the browser tests drive Debian's Chromium (Playwright never downloads a browser), and the load benchmark drives
# the API with wrk (a C load generator: it leaves the shared cores to the server processes it measures).
# Idempotent: does nothing when they are all present; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(libusb-1.0-0 libgl1 libegl1 libgomp1 libglib2.0-0 libxkbcommon0 libfontconfig1 libdbus-1-3 nginx-light
          postgresql chromium wrk)
# Node.js: keep a newer one that is already installed (e.g. from NodeSource); otherwise Debian's nodejs + npm
command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null

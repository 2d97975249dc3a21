#!/usr/bin/env bash
# The browser the web app's browser test drives: Debian's chromium and its chromedriver (selenium finds both on
# PATH). Installed with apt when missing (as root, or through sudo); Playwright's own download does not work here.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
chromedriver --version

#!/usr/bin/env bash
# Makes sure Debian's chromium is available for the dashboard's browser tests (Playwright drives
# it through executable_path; it never downloads a browser of its own). Installs the package when
# missing and we are root; otherwise says how, and the browser tests are skipped with that reason.
set -euo pipefail
if [ -n "${CONVEYOR_CHROMIUM:-}" ] && [ -x "${CONVEYOR_CHROMIUM}" ]; then
    exit 0
fi
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium not found: installing Debian's chromium package (for the dashboard's browser tests)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
cat >&2 <<MSG
chromium was not found on PATH: the dashboard's browser tests (tests/dashboard/test_browser.py)
will be skipped. To run them, install it (or point CONVEYOR_CHROMIUM at a chromium binary):
    Debian/Ubuntu:  sudo apt-get install chromium
MSG
exit 0

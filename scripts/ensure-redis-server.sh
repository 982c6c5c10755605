#!/usr/bin/env bash
# Makes sure a redis-server binary is available for the test suite (which starts its own
# throwaway server on a free port). Installs Debian's package when missing and we are root;
# otherwise says how to install it.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing Debian's redis-server package" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    # The package may start a system service on 6379; the tests never use it.
    exit 0
fi
cat >&2 <<MSG
redis-server was not found on PATH, and it is needed by the test suite (the suite starts
its own throwaway server on a free port; it never touches port 6379).
Install it, then run 'make test' again:
    Debian/Ubuntu:  sudo apt-get install redis-server
    macOS:          brew install redis
MSG
exit 1

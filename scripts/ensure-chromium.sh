#!/bin/sh
# Make sure Debian's chromium is at /usr/bin/chromium (the dashboard's browser test drives it
# with Playwright). Idempotent and quiet when it is there already; installs it with apt-get
# otherwise (as root, or through sudo when that works without a password). Exits non-zero,
# saying why, when it cannot.
set -eu

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure-chromium: $CHROMIUM is missing and this user cannot install packages;" \
        "run as root: apt-get install -y chromium" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and there is no apt-get here;" \
        "install Chromium so that $CHROMIUM runs it" >&2
    exit 1
fi

echo "ensure-chromium: installing Debian's chromium (for the dashboard's browser test)" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The package lists may be missing or old on a fresh machine: install, else update and retry.
if ! $SUDO apt-get install -y -q chromium >"$log" 2>&1; then
    if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "ensure-chromium: apt-get could not install chromium" >&2
        exit 1
    fi
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "ensure-chromium: chromium installed but $CHROMIUM is not there" >&2
    exit 1
fi

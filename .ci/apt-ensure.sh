#!/usr/bin/env bash
# Make sure Debian packages are installed, for the test groups that need system software.
#
#   .ci/apt-ensure.sh NAME WHO PACKAGE...
#
# NAME prefixes the messages, WHO names the tests that skip without the packages.
# Idempotent: does nothing (and is fast) when all are installed; needs root and apt-get
# (Debian/Ubuntu), otherwise it says so and exits 0, and those tests skip. Installs with
# --no-install-recommends: the tests need the runtime only (no docs, compilers or headers).
# No repository reachable: says so and leaves it to the tests to skip.
set -euo pipefail

name=$1 who=$2
shift 2
missing=()
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "$name: $* already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$name: need root and apt-get to install ${missing[*]}; $who will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "$name: installing ${missing[*]}"
if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null; then
    echo "$name: installed ${missing[*]}"
else
    echo "$name: could not install ${missing[*]}; $who will skip"
fi

#!/usr/bin/env bash
# Set usernet up in this clone: the system programs the demo and tests use, then .venv with
# usernet and its test extra. Run as root on a Debian-family system it installs the programs
# (the list is usernet/programs.py); otherwise it names the packages to install and goes on,
# since only the root-only TAP paths need them.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
    echo "setup.sh: $python is not installed (apt-get install python3 python3-venv)" >&2
    exit 1
fi

mapfile -t wanted < <("$python" usernet/programs.py missing)
if [ "${#wanted[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "setup.sh: installing Debian packages: ${wanted[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
    else
        echo "setup.sh: not installing system programs (needs root and apt-get). The TAP demo and the"
        echo "  network tests use them; install these packages: ${wanted[*]}"
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv || {
        echo "setup.sh: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
echo "setup.sh: usernet is installed in .venv (run it as .venv/bin/usernet, test with .venv/bin/pytest)"

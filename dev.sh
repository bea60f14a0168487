#!/usr/bin/env bash
# Set-up and the two everyday jobs, from a clean clone on a Debian machine with Python >= 3.11:
#   bash dev.sh demo   install what is missing, then run `meterlink demo`
#   bash dev.sh test   install what is missing (system packages too), then run the whole test suite
#   bash dev.sh bench  install what is missing, run every benchmark and rewrite bench/README.md's figures
#                      (`bench --quick`: few, short rounds, a smoke check; `bench p1_decode mbus_decode`: only these)
set -euo pipefail
cd "$(dirname "$0")"

SYSTEM_PACKAGES_FOR_TESTS=(graphviz mosquitto chromium spin gcc)   # diagrams/*.svg, the MQTT tests' broker, the browser test, SPIN model checking (tests/test_spin.py)
SYSTEM_PACKAGES_FOR_BENCH=(mosquitto)                     # bench/latency.py's and bench/gateway.py's broker

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    local missing=()
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "dev.sh: installing ${missing[*]}" >&2
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

venv() {
    local python=${PYTHON:-python3}
    if ! python_ok "$python"; then
        apt_install python3 python3-venv
        python_ok "$python" || { echo "dev.sh: meterlink needs Python >= 3.11 ($python is older)" >&2; exit 2; }
    fi
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    local stamp=.venv/.meterlink-installed want
    want=$(cat pyproject.toml | sha256sum)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e ".[test,bench]"
        echo "$want" > "$stamp"
    fi
}

case "${1:-}" in
    demo)
        venv
        shift
        exec .venv/bin/meterlink demo "$@"
        ;;
    test)
        apt_install "${SYSTEM_PACKAGES_FOR_TESTS[@]}"
        venv
        shift
        .venv/bin/meterlink diagrams --check
        exec .venv/bin/python -m pytest --transition-coverage "$@"
        ;;
    bench)
        apt_install "${SYSTEM_PACKAGES_FOR_BENCH[@]}"
        venv
        shift
        exec .venv/bin/python bench/run.py "$@"
        ;;
    *)
        echo "usage: bash dev.sh demo|test|bench [args]" >&2
        exit 2
        ;;
esac

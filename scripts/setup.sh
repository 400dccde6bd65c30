#!/usr/bin/env bash
# Create .venv and install the project (with extras given as $1, e.g. "dev"). Offline at run
# time: only this step reaches the package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".${1:+[$1]}"
.venv/bin/pip check

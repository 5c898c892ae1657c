#!/usr/bin/env bash
# Installs what the platform needs into ./.venv (idempotent; quick when already done).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The CPU build of torch first: this machine ships its wheel locally, and a plain `torch`
# requirement would otherwise pull several GB of CUDA packages.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.13.0" || .venv/bin/pip install -q torch
fi
# Requirement files to install: the arguments, or requirements-dev.txt.
reqs=()
for file in "${@:-requirements-dev.txt}"; do reqs+=(-r "$file"); done
.venv/bin/pip install -q "${reqs[@]}"

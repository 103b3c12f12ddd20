#!/usr/bin/env bash
# One-command environment setup for spikeplastic.
#   - a virtual env inside the project (.venv, or $VENV)
#   - torch first (TORCH_SPEC overrides, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124")
#   - lava-nc 0.10.0 with its install quirk (it declares Python <3.11; see export/_compat.py)
#   - the project itself, editable, with dev extras
# Idempotent: a finished setup is recorded in $VENV/.spikeplastic-setup and skipped next time
# unless pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
WITH_LAVA=${WITH_LAVA:-1}
stamp="$VENV/.spikeplastic-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)-$TORCH_SPEC-$WITH_LAVA
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: $VENV is up to date"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip setuptools wheel
# torch before anything that depends on it, so no resolver pulls a multi-GB CUDA build.
pip install -q $TORCH_SPEC
# Lava's dependency set (numpy<2), then lava-nc itself without its Python-version guard (it declares
# Python <3.11; spikeplastic.export carries the one fix 3.11 needs, see export/_compat.py).
# lava-nc pins networkx<=2.8.7, but scikit-image needs networkx>=3 and Lava was measured to work with
# networkx 3.6 (tests/export), so networkx is left to the resolver.
pip install -q "numpy>=1.24.4,<2" "scipy>=1.10.1,<2" "networkx>=2.8" "asteval>=0.9.31,<0.10" "scikit-learn>=1.5"
if [ "$WITH_LAVA" = 1 ]; then
  pip install -q --no-deps --ignore-requires-python lava-nc==0.10.0
fi
pip install -q -e ".[dev]"
echo "$want" > "$stamp"
echo "setup: done ($VENV)"

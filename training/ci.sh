#!/usr/bin/env bash
# Lint and test the training package. Run from the repository root: bash training/ci.sh
# Uses (and creates when absent) the virtualenv $VENV (default .venv at the repository root) and
# installs only what the tests import: the core pins and pytest/ruff, no torch (no CUDA libraries).
# The LSTM and MiniLM smoke tests (training/tests/test_smoke_torch.py) skip without torch; set
# CI_TRAIN_EXTRAS=1 to install the `train` extra as well and run them. The tests run on a tiny corpus
# they write themselves: no data set, network (beyond the install) or GPU is needed.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
EXTRAS="test"
if [ "${CI_TRAIN_EXTRAS:-0}" = 1 ]; then
    EXTRAS="test,train"
fi
# pip only downloads what is missing or at another version than the pins. On a fresh machine this
# takes a few minutes (about 1 GB): say so, and show pip's own lines rather than minutes of silence.
echo "installing the training package's test dependencies into $VENV (training[$EXTRAS])"
"$PY" -m pip install --disable-pip-version-check --progress-bar off -e "training[$EXTRAS]"

export HF_HUB_OFFLINE=1
"$PY" -m ruff check --config training/pyproject.toml training scripts/learning_loop_e2e.py
# `python -m` puts the repository root on sys.path, so `import training` is this checkout.
"$PY" -m pytest -p no:cacheprovider -c training/pyproject.toml --rootdir training training/tests -rs

#!/usr/bin/env bash
# Lint and test the training package. Run from the repository root: bash training/ci.sh
# Uses (and creates when absent) the virtualenv .venv at the repository root. The tests run on a
# tiny corpus they write themselves: no data set, network or GPU is needed.
set -euo pipefail

cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
PY=.venv/bin/python
# pip only downloads what is missing or at another version than the pins.
"$PY" -m pip install --quiet --disable-pip-version-check -e "training[test]"

export HF_HUB_OFFLINE=1
"$PY" -m ruff check --config training/pyproject.toml training
# `python -m` puts the repository root on sys.path, so `import training` is this checkout.
"$PY" -m pytest -p no:cacheprovider -c training/pyproject.toml --rootdir training training/tests

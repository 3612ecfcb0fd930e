#!/usr/bin/env bash
# Drives the web page in headless Chromium (Debian's, through playwright-core) against the real
# handler binary, serving the fixture models from a temporary local store.
#
#   scripts/web-test.sh
#
# Installs chromium when missing (apt, as root: what CI's clean Debian machine needs).
# Leaves the screenshot and the handler's log in target/web-test/.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=/usr/bin/chromium
packages=()
[[ -x $chromium ]] || packages+=(chromium)
# Without a colour emoji font the 👍/👎 buttons are empty boxes in the screenshot.
fc-list 2>/dev/null | grep -qi 'Noto Color Emoji' || packages+=(fonts-noto-color-emoji)
if ((${#packages[@]})); then
  echo "installing ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
if [[ ! -f node_modules/playwright-core/package.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Built the way `cargo test` builds it, so after the test step this compiles nothing: a plain
# `cargo build` resolves dependency features without the dev-dependencies and rebuilds them all.
cargo test --locked --no-run
target_dir=${CARGO_TARGET_DIR:-target}
artifacts=$target_dir/web-test
mkdir -p "$artifacts"
rm -f "$artifacts/page.png"

work=$(mktemp -d)
handler_pid=""
stop_handler() {
  if [[ -n $handler_pid ]] && kill -0 "$handler_pid" 2>/dev/null; then
    kill -TERM "$handler_pid"
    wait "$handler_pid" || true
  fi
  rm -rf "$work"
}
trap stop_handler EXIT

cp -r tests/fixtures/models "$work/models"
mkdir -p "$work/data"
log=$artifacts/handler.log
# Port 0, as under the Functions host in the tests: the OS picks a free port and the handler logs it.
env FUNCTIONS_CUSTOMHANDLER_PORT=0 BIND_ADDRESS=127.0.0.1 \
    MODELS_DIR="$work/models" DATA_DIR="$work/data" LOG_FORMAT=json RUST_LOG=info \
    "$target_dir/debug/tweet-sentiment" serve >"$log" 2>&1 &
handler_pid=$!

address=""
for _ in $(seq 1 300); do
  address=$(sed -n 's/.*"message":"listening".*"address":"\([^"]*\)".*/\1/p' "$log" | head -n 1)
  [[ -n $address ]] && break
  if ! kill -0 "$handler_pid" 2>/dev/null; then
    echo "the handler exited before listening:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z $address ]]; then
  echo "the handler did not log its address within 30 s:" >&2
  cat "$log" >&2
  exit 1
fi
echo "handler at http://$address (log: $log)"

WEB_TEST_BASE_URL="http://$address" WEB_TEST_DATA_DIR="$work/data" WEB_TEST_ARTIFACTS="$artifacts" \
  CHROMIUM_PATH="$chromium" node --test --test-reporter=spec web-tests/*.test.mjs
echo "screenshot: $artifacts/page.png"

#!/usr/bin/env bash
# Starts Azurite's blob service on 127.0.0.1 with in-memory storage, for tests.
#
#   source scripts/azurite.sh   # exports AZURITE_CONNECTION_STRING and AZURITE_PID
#   azurite_stop                # stops it (also registered on EXIT by the caller)
#
# Installs the pinned npm packages (package.json) when they are missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -x "$repo/node_modules/.bin/azurite-blob" ]]; then
  (cd "$repo" && npm ci --no-audit --no-fund --loglevel=error)
fi

# A free port, so a developer's own Azurite on 10000 is left alone.
AZURITE_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
workspace="$(mktemp -d)"
"$repo/node_modules/.bin/azurite-blob" \
  --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
  --inMemoryPersistence --disableTelemetry --skipApiVersionCheck --silent \
  >"$workspace/azurite.log" 2>&1 &
AZURITE_PID=$!

azurite_stop() {
  if [[ -n "${AZURITE_PID:-}" ]] && kill -0 "$AZURITE_PID" 2>/dev/null; then
    kill "$AZURITE_PID" 2>/dev/null || true
    wait "$AZURITE_PID" 2>/dev/null || true
  fi
}

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$AZURITE_PORT") 2>/dev/null; then
    break
  fi
  if ! kill -0 "$AZURITE_PID" 2>/dev/null; then
    cat "$workspace/azurite.log" >&2
    echo "Azurite failed to start" >&2
    exit 1
  fi
  sleep 0.2
done

# Azurite's well-known development account (public, not a secret). The trailing slash on the
# endpoint is deliberate: the store must cope with it.
AZURITE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:${AZURITE_PORT}/devstoreaccount1/;"
export AZURITE_CONNECTION_STRING AZURITE_PID AZURITE_PORT
echo "Azurite blob service on 127.0.0.1:${AZURITE_PORT} (pid ${AZURITE_PID})"

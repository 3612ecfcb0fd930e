#!/usr/bin/env bash
# Side-by-side serving benchmark: the release binary against a minimal FastAPI + onnxruntime server
# (scripts/bench/peer_server.py, 2 workers) on the same model version, driven by the same load tool
# (wrk). Prints one markdown table: cold start to the first scored answer, sequential p50/p99,
# throughput at 16 connections, and single-tweet p99 while 4 clients send 64-text batches.
#
#   scripts/bench-serving.sh                 # the newest version of each family under models/
#   scripts/bench-serving.sh models/lstm/2026.11.29-1
#   BENCH_SECONDS=20 scripts/bench-serving.sh
#
# Installs what it needs: wrk (Debian), a virtualenv in target/bench-venv (PyPI), the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
OUR_PORT=7391
PEER_PORT=7392
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
# uvicorn[standard] brings httptools and uvloop, what a user deploying FastAPI would run.
if [[ ! -x target/bench-venv/bin/uvicorn ]] || ! target/bench-venv/bin/python -c 'import httptools, uvloop' 2>/dev/null; then
  echo "creating target/bench-venv (fastapi, uvicorn, onnxruntime, tokenizers)" >&2
  python3 -m venv target/bench-venv
  target/bench-venv/bin/pip install --disable-pip-version-check --progress-bar off \
    fastapi==0.165.0 "uvicorn[standard]==0.54.0" onnxruntime==1.32.0 tokenizers==0.23.3 numpy==2.4.6 >&2
fi
echo "building the release binary" >&2
cargo build --release --locked --quiet

if [[ $# -gt 0 ]]; then
  versions=("$@")
else
  versions=()
  for family in models/*/; do
    newest=$(ls -d "$family"*/ 2>/dev/null | sort | tail -n 1)
    [[ -n "$newest" && -f "$newest/manifest.json" ]] && versions+=("${newest%/}")
  done
fi

single='{"text":"Flight delayed again, third time this month, nobody answers the phone"}'
batch=$(python3 -c 'import json; print(json.dumps({"texts": ["Flight delayed again, third time this month and the crew could not tell us anything useful at all #fail"] * 64}))')
lua() {  # a wrk script posting $1
  local body=$1 file=$2
  python3 - "$body" "$file" <<'PY'
import json, sys
body, path = sys.argv[1], sys.argv[2]
open(path, "w").write(
    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    f"wrk.body = {json.dumps(body)}\n")
PY
}
lua "$single" "$work/single.lua"
lua "$batch" "$work/batch.lua"

ms() { python3 -c 'import sys; print(f"{float(sys.argv[1]):.0f}")' "$1"; }
now_ms() { date +%s%3N; }

# Starts a server and waits for its first scored answer: sets server_pid, and cold_ms to the
# milliseconds from the start to that answer.
cold_start() {
  local port=$1; shift
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "port $port is taken by another server: stop it first" >&2
    exit 1
  fi
  local started; started=$(now_ms)
  "$@" >"$work/server.log" 2>&1 &
  server_pid=$!
  until curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/api/predict" \
      -H 'content-type: application/json' -d "$single"; do
    sleep 0.01
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
  done
  cold_ms=$(( $(now_ms) - started ))
}

# wrk's latency percentile (ms) of a run's output.
percentile() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' "$2"; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

measure() {  # name port: prints "seq p50 | seq p99 | rps@16 | single p99 under flood"
  local port=$2 url="http://127.0.0.1:$2/api/predict"
  wrk -t1 -c1 -d"${SECONDS_PER_RUN}s" --latency -s "$work/single.lua" "$url" >"$work/seq.txt"
  wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" -s "$work/single.lua" "$url" >"$work/tput.txt"
  wrk -t1 -c4 -d"$((SECONDS_PER_RUN + 2))s" -s "$work/batch.lua" "$url" >"$work/flood.txt" &
  local flood=$!
  sleep 1
  wrk -t1 -c1 -d"${SECONDS_PER_RUN}s" --latency -s "$work/single.lua" "$url" >"$work/under.txt"
  wait "$flood" || true
  printf '%s | %s | %s | %s' "$(percentile 50% "$work/seq.txt")" "$(percentile 99% "$work/seq.txt")" \
    "$(rps "$work/tput.txt")" "$(percentile 99% "$work/under.txt")"
}

rows=()
for version in "${versions[@]}"; do
  name=$(basename "$(dirname "$version")"); ver=$(basename "$version")
  models="$work/models-$name"
  mkdir -p "$models/$name"
  cp -r "$version" "$models/$name/"
  printf '{"name": "%s", "version": "%s"}\n' "$name" "$ver" >"$models/champion.json"

  echo "== $name/$ver: tweet-sentiment" >&2
  cold_start $OUR_PORT env MODELS_DIR="$models" DATA_DIR="$work/data" LOG_FORMAT=json \
    target/release/tweet-sentiment serve --port $OUR_PORT
  ours=$(measure ours $OUR_PORT)
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  rows+=("| $name/$ver | tweet-sentiment | $cold_ms | $ours |")

  echo "== $name/$ver: FastAPI + onnxruntime" >&2
  cold_start $PEER_PORT env MODEL_DIR="$version" target/bench-venv/bin/uvicorn \
    --app-dir scripts/bench peer_server:app --port $PEER_PORT --workers 2 --log-level warning
  peer=$(measure peer $PEER_PORT)
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  rows+=("| $name/$ver | FastAPI + onnxruntime (2 workers) | $cold_ms | $peer |")
done

echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); wrk, ${SECONDS_PER_RUN} s a run."
echo
echo "| version | server | cold start to first answer (ms) | sequential p50 (ms) | sequential p99 (ms) | req/s at 16 connections | single-tweet p99 under 4 × 64-text batches (ms) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"

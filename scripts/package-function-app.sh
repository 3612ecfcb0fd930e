#!/usr/bin/env bash
# Assembles the deployable function app: the release binary (with its run bit), host.json and one
# folder per function, in target/function-app/, plus target/function-app.zip for zip deploy.
#
#   scripts/package-function-app.sh [--target x86_64-unknown-linux-musl]
set -euo pipefail
cd "$(dirname "$0")/.."

target=""
if [[ "${1:-}" == "--target" ]]; then
  target="${2:?--target needs a triple}"
fi

if [[ -n "$target" ]]; then
  cargo build --release --locked --target "$target"
  binary="target/$target/release/tweet-sentiment"
else
  cargo build --release --locked
  binary="target/release/tweet-sentiment"
fi

out=target/function-app
rm -rf "$out" target/function-app.zip
mkdir -p "$out"
cp function-app/host.json "$out/"
for dir in function-app/*/; do
  [[ -f "$dir/function.json" ]] && cp -r "$dir" "$out/"
done
install -m 0755 "$binary" "$out/tweet-sentiment"
# Python's zipfile records each file's mode, so the binary keeps its run bit in the archive.
(cd "$out" && python3 -m zipfile -c ../function-app.zip ./*)
echo "packaged $out and target/function-app.zip"

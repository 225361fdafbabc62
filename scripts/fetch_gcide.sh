#!/usr/bin/env bash
# Fetches GCIDE, the Collaborative International Dictionary of English (Debian
# package dict-gcide, version- and checksum-pinned; about 4.9 M words, four times
# Brown), into data/gcide/ (git-ignored) and writes it as plain text with
# scripts/gcide_to_text.py: data/gcide/text/<nnnn>.txt, 100 dictionary entries per
# document, one entry per paragraph. Idempotent. Needs apt (Debian) for the
# download, no root: `apt-get download` only fetches the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fetch_lib.sh

VERSION=0.48.5+nmu2
SHA256=7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f
out=data/gcide
deb=$out/dict-gcide_${VERSION}_all.deb

if [ -f "$out/text/.complete" ]; then
  echo "fetch_gcide: $out/text is ready ($(cat "$out/text/.complete"))"
  exit 0
fi
command -v apt-get >/dev/null || {
  echo "fetch_gcide: apt-get is missing; this script needs Debian's package tools" >&2; exit 2; }
mkdir -p "$out"
if [ ! -f "$deb" ]; then
  echo "fetch_gcide: apt-get download dict-gcide=$VERSION"
  (cd "$out" && apt-get download "dict-gcide=$VERSION" >/dev/null 2>&1) || {
    echo "fetch_gcide: apt-get download failed (run 'sudo apt-get update' first; is the Debian mirror reachable?)" >&2
    exit 2; }
fi
require_sha256 fetch_gcide "$deb" "$SHA256"
rm -rf "$out/package" "$out/text"
dpkg-deb -x "$deb" "$out/package"
python3 scripts/gcide_to_text.py "$out/package/usr/share/dictd" "$out/text"

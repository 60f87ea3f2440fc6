#!/usr/bin/env bash
# Fails when include/unitfp8.h differs from what cbindgen 0.29.4 generates from the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cbindgen --quiet --config cbindgen.toml --crate unitfp8 --output "$tmp"
if ! diff -u include/unitfp8.h "$tmp"; then
  echo "include/unitfp8.h is stale: regenerate it with"
  echo "  cbindgen --config cbindgen.toml --crate unitfp8 --output include/unitfp8.h"
  exit 1
fi
echo "header up to date"

#!/usr/bin/env bash
# Checks that include/unitfp8.h is what cbindgen generates from the sources now: regenerates it
# into a temporary file and diffs (cbindgen --verify would rewrite the file). Exits 1 when they
# differ; regenerate with
#   cbindgen --config cbindgen.toml --output include/unitfp8.h src/ffi/mod.rs
# (only src/ffi/ is read: the C ABI's allow-list). Then checks that every name the header
# declares starts with unitfp8_ or UNITFP8_ (check-header-names.py, after its self-test).
# The header was generated with cbindgen 0.29.4; another version may format it differently.
set -euo pipefail
cd "$(dirname "$0")/.."
want="0.29.4"
have="$(cbindgen --version | awk '{print $2}')"
if [[ "$have" != "$want" ]]; then
    echo "warning: cbindgen $have, the header was generated with $want" >&2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cbindgen --config cbindgen.toml --output "$tmp/unitfp8.h" src/ffi/mod.rs 2>"$tmp/log" || {
    cat "$tmp/log" >&2
    exit 1
}
if ! diff -u include/unitfp8.h "$tmp/unitfp8.h"; then
    echo "include/unitfp8.h is out of date: regenerate it (see ffi-tests/check-header.sh)" >&2
    exit 1
fi
echo "include/unitfp8.h is up to date"
python3 ffi-tests/check-header-names.py --self-test
python3 ffi-tests/check-header-names.py include/unitfp8.h

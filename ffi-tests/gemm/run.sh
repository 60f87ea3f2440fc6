#!/bin/sh
# Builds the library and runs the C and Python tests of the GEMM C ABI.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release
out="$root/ffi-tests/build/gemm"
mkdir -p "$out"
cc -std=c99 -Wall -Wextra -Werror -pedantic -O2 -ffp-contract=off \
    ffi-tests/gemm/test_gemm.c target/release/libunitfp8.a -lpthread -ldl -lm -o "$out/test_gemm"
"$out/test_gemm"
if [ -x "$root/.venv/bin/python" ]; then default_python="$root/.venv/bin/python"; else default_python=python3; fi
python="${PYTHON:-$default_python}"
UNITFP8_LIB="$root/target/release/libunitfp8.so" "$python" ffi-tests/gemm/test_gemm.py

#!/usr/bin/env bash
# Runs every test of unitfp8: the Rust suites (release; exhaustive over all 2^32 f32 inputs on
# x86-64), the C/C++/Python FFI suites against the static and shared libraries, the GEMM FFI
# suite, the aarch64 (NEON) suites under qemu, the Python package's tests (pip install ./python,
# pytest), the install tests (cargo cinstall; C, static C, C++ through CMake, the C example
# trainer) and every code block of README.md. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh
export PYTHON="$PWD/.venv/bin/python"

step() { echo; echo "=== $* ==="; }
step "cargo test --release (workspace)"
cargo test --release --workspace
step "C / C++ / Python FFI tests"
FFI_AARCH64=1 scripts/ffi-tests.sh
step "GEMM FFI tests"
ffi-tests/gemm/run.sh
step "Python package: pip install ./python, pytest python/tests"
"$PYTHON" -m pip install --quiet --disable-pip-version-check ./python
(cd python/tests && "$PYTHON" -m pytest -q -p no:cacheprovider .)
step "aarch64 / NEON tests under qemu"
scripts/test-aarch64.sh
step "install tests: cargo cinstall, then C, static C, C++ (CMake) and examples/c"
ffi-tests/install/run.sh
step "README code blocks"
"$PYTHON" scripts/readme-snippets.py --self-test
"$PYTHON" scripts/readme-snippets.py
echo; echo "all tests passed"

#!/usr/bin/env bash
# Runs the whole test suite of the crate for AArch64 (NEON back end) under qemu user-mode
# emulation. Needs the rust target aarch64-unknown-linux-gnu, gcc-aarch64-linux-gnu and
# qemu-user; the linker and runner come from .cargo/config.toml. Extra arguments go to
# `cargo test` (e.g. a test name filter after `--`). Exits nonzero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || { echo "test-aarch64: $tool not found" >&2; exit 2; }
done
rustup target list --installed 2>/dev/null | grep -qx "$target" \
    || { echo "test-aarch64: rust target $target not installed (rustup target add $target)" >&2; exit 2; }

start=$(date +%s)
cargo test --release --target "$target" "$@"
echo "test-aarch64: passed in $(( $(date +%s) - start )) s (qemu-aarch64 -cpu max)"

#!/usr/bin/env bash
# Runs the whole test suite of the crate for AArch64 (NEON back end) under qemu user-mode
# emulation (`-cpu max`, the runner in .cargo/config.toml), then the back-end conformance suite
# (NEON against the scalar reference) once more on a baseline ARMv8.0 core (`-cpu cortex-a53`) to
# show that no optional extension is needed.
# Needs the rust target aarch64-unknown-linux-gnu, gcc-aarch64-linux-gnu and qemu-user.
# Extra arguments go to the first `cargo test` (e.g. a filter after `--`) and skip the second
# pass. Exits nonzero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || { echo "test-aarch64: $tool not found" >&2; exit 2; }
done
if command -v rustup >/dev/null && ! grep -qx "$target" <<<"$(rustup target list --installed)"; then
    echo "test-aarch64: rust target $target missing (rustup target add $target)" >&2
    exit 2
fi

start=$(date +%s)
cargo test --release --target "$target" "$@"
if [ $# -eq 0 ]; then
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a53" \
        cargo test --release --target "$target" --test backend_conformance
fi
echo "test-aarch64: passed in $(( $(date +%s) - start )) s"

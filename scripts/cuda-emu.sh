#!/usr/bin/env bash
# Runs the CUDA kernels without a GPU, on the host SIMT emulator (kernels/emu): builds the
# stand-in libcuda.so (g++; UBSan checks alignment, bounds, shifts and overflow in the kernels
# as they run) into target/cuda-emu, then runs tests/cuda_device.rs against it twice: as an
# sm_90a device (GEMM kernels: naive, mma.sync, wgmma + TMA) and as an sm_89 device (naive,
# mma.sync). Fails unless the tests ran on the emulator. Then dry-runs the GPU check
# (gpu/run_checks.sh) on the emulated sm_90a device, and checks that deliberate kernel bugs
# (kernels/emu/mutants.txt) make the tests fail (scripts/cuda-emu-mutants.sh).
# Needs a `--features cuda` build (nvcc on PATH or NVCC: scripts/cuda-check.sh calls this).
# Environment: UNITFP8_EMU_SEED (thread interleaving and poison), UNITFP8_TEST_SEED (inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "cuda-emu: FAIL: $*" >&2; exit 1; }

OUT="$PWD/target/cuda-emu"
mkdir -p "$OUT"
echo "cuda-emu: building $OUT/libcuda.so"
g++ -std=c++17 -O2 -g -ffp-contract=off -fPIC -shared -Wall -Wextra -Werror -Wno-unknown-pragmas -Wno-psabi \
    -fsanitize=alignment,bounds,shift,signed-integer-overflow -fno-sanitize-recover=all \
    -o "$OUT/libcuda.so" kernels/emu/fake_driver.cpp

# A fresh interleaving each run (printed: set it to reproduce one).
export UNITFP8_EMU_SEED="${UNITFP8_EMU_SEED:-$(( (RANDOM << 15) | RANDOM ))}"
echo "cuda-emu: UNITFP8_EMU_SEED=$UNITFP8_EMU_SEED"
# The device tests as one binary: run here, and by gpu/run_checks.sh on a GPU machine.
exe=$(cargo test --release --features cuda --test cuda_device --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[[ -x "$exe" ]] || fail "no tests/cuda_device.rs executable (is nvcc on PATH?)"
cp "$exe" target/release/cuda_device_test

for cc in 90 89; do
    log="$OUT/sm_$cc.log"
    echo "cuda-emu: tests/cuda_device.rs on the emulated sm_$cc device"
    # The sm_90a run also takes the kernels' encoders through every f32 (about a minute).
    exhaustive=""
    [[ $cc == 90 ]] && exhaustive=1
    UNITFP8_EMU_EXHAUSTIVE=$exhaustive UNITFP8_REQUIRE_DEVICE=1 UNITFP8_EMU_CC=$cc \
        LD_LIBRARY_PATH="$OUT${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" cargo test --release --features cuda --test cuda_device -- --nocapture 2>&1 | tee "$log"
    # UNITFP8_REQUIRE_DEVICE makes a test without a device fail; this checks the device was ours.
    grep -q "on unitfp8 SIMT emulator (sm_$cc" "$log" || fail "the device tests did not run on the emulated sm_$cc device"
done
# The GPU check itself, as it runs on a GPU (gpu/run_checks.sh: every gpu/check.py
# section, then the Rust device tests), on the emulated sm_90a device, quick and with tiny bench
# sizes (timings mean nothing here: this checks the scripts), gpu/emu_torch standing in for
# PyTorch.
[[ -x .venv/bin/python ]] || scripts/setup.sh
echo "cuda-emu: dry run of gpu/run_checks.sh on the emulated sm_90a device"
rm -rf "$OUT/check"
lib_path="$OUT${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ! QUICK=1 TINY=1 OUT="$OUT/check" PYTHON="${PYTHON:-$PWD/.venv/bin/python}" UNITFP8_EMU_CC=90 \
    PYTHONPATH="$PWD/gpu/emu_torch" LD_LIBRARY_PATH="$lib_path" \
    bash gpu/run_checks.sh >"$OUT/run_checks.log" 2>&1; then
    sed -n '/=== summary/,$p' "$OUT/run_checks.log"
    fail "gpu/run_checks.sh (log: $OUT/run_checks.log)"
fi
sed -n '/=== summary/,/=== tables/p' "$OUT/run_checks.log"
n=$(find "$OUT/check" -type f | wc -l)
[[ $n -le 8 ]] || fail "gpu/run_checks.sh left $n files (it writes gpu_<section>.{json,log}, 8 at most)"
# The tests can fail: each deliberate kernel bug of kernels/emu/mutants.txt must be caught.
echo "cuda-emu: deliberate kernel bugs (kernels/emu/mutants.txt)"
PYTHON="${PYTHON:-$PWD/.venv/bin/python}" scripts/cuda-emu-mutants.sh target/release/cuda_device_test
echo "cuda-emu: OK"

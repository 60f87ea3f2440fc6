#!/usr/bin/env bash
# Runs the CUDA kernels without a GPU, on the host SIMT emulator (kernels/emu): builds the
# stand-in libcuda.so (g++; UBSan checks alignment, bounds, shifts and overflow in the kernels
# as they run) into target/cuda-emu, then runs tests/cuda_device.rs against it twice: as an
# sm_90a device (GEMM kernels: naive, mma.sync, wgmma + TMA) and as an sm_89 device (naive,
# mma.sync). Fails unless every test really ran on the emulator. Then runs the GPU script
# gpu/check.py (info, elementwise, gemm; --quick) on the emulated sm_90a device.
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
for cc in 90 89; do
    log="$OUT/sm_$cc.log"
    echo "cuda-emu: tests/cuda_device.rs on the emulated sm_$cc device"
    UNITFP8_EMU_CC=$cc LD_LIBRARY_PATH="$OUT${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        cargo test --release --features cuda --test cuda_device -- --nocapture 2>&1 | tee "$log"
    ran=$(grep -c "on unitfp8 SIMT emulator (sm_$cc" "$log" || true)
    total=$(grep -cE "^test [a-z_]+ \.\.\. " "$log" || true)
    [[ "$ran" -ge 1 && "$ran" == "$total" ]] || fail "$ran of $total device tests ran on the emulated sm_$cc device"
done
# The GPU script itself (gpu/check.py: info, elementwise and gemm sections, --quick) on the
# emulated sm_90a device, with gpu/emu_torch standing in for PyTorch. Its bench section (timings)
# only means something on a GPU.
[[ -x .venv/bin/python ]] || scripts/setup.sh
PY="${PYTHON:-$PWD/.venv/bin/python}"
for section in info elementwise gemm; do
    echo "cuda-emu: gpu/check.py $section --quick on the emulated sm_90a device"
    UNITFP8_EMU_CC=90 PYTHONPATH="$PWD/gpu/emu_torch" LD_LIBRARY_PATH="$OUT${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$PY" gpu/check.py "$section" --quick --lib target/release/libunitfp8.so --out "$OUT/check" >"$OUT/check_$section.log" 2>&1 ||
        { grep -E "FAIL|Error|error" "$OUT/check_$section.log" | head -20; fail "gpu/check.py $section (log: $OUT/check_$section.log)"; }
    tail -1 "$OUT/check_$section.log"
done
echo "cuda-emu: OK"

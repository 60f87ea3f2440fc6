#!/usr/bin/env bash
# CUDA checks that need no GPU (run by CI):
#   1. installs nvcc 13.0 (+ cuobjdump, nvdisasm) from PyPI into a venv when no nvcc is found,
#   2. builds the library with `--features cuda` (build.rs embeds the fatbin),
#   3. disassembles the embedded fatbin and checks that
#      - every sm_90a wgmma GEMM kernel contains QGMMA (FP8 warpgroup MMA) and UTMALDG (TMA),
#      - every sm_89 mma.sync GEMM kernel contains QMMA (FP8 mma.sync),
#      - no kernel spills registers or uses a stack frame (ptxas -v: 0 bytes everywhere; no
#        local loads/stores in the SASS),
#   4. runs the CUDA tests (tests/cuda.rs; without a GPU they check argument validation and
#      the "no driver / no device" statuses),
#   5. runs the kernels on the host SIMT emulator (scripts/cuda-emu.sh: tests/cuda_device.rs
#      against the CPU reference, bit for bit) and keeps that test binary as
#      target/release/cuda_device_test for the GPU machine.
# Exits nonzero on any failure. Usage: scripts/cuda-check.sh [--no-test]
# Environment: NVCC (an nvcc to use), UNITFP8_CUDA_VENV (venv for the PyPI tools; default
# ~/.cache/unitfp8-cuda-venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${UNITFP8_CUDA_VENV:-$HOME/.cache/unitfp8-cuda-venv}"
PYTHON="${PYTHON:-python3}"
fail() { echo "cuda-check: FAIL: $*" >&2; exit 1; }

# --- 1. tools ------------------------------------------------------------------------------
tools_bin() { echo "$($1/bin/python -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "bin"))' 2>/dev/null)"; }
if [[ -z "${NVCC:-}" ]] && ! command -v nvcc >/dev/null; then
    if [[ ! -x "$VENV/bin/nvcc-ok" ]]; then
        echo "cuda-check: installing nvcc 13.0.88 from PyPI into $VENV"
        "$PYTHON" -m venv "$VENV"
        # nvcc 13.0.88 does not pin its compiler parts: pin them, or PTX 9.x from a newer NVVM
        # breaks its ptxas. cuobjdump/nvdisasm only disassemble: any 13.x reads sm_89/sm_90a.
        "$VENV/bin/pip" install -q "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" \
            "nvidia-cuda-crt==13.0.88" "nvidia-cuda-runtime==13.0.96" \
            "nvidia-cuda-cuobjdump>=13.0,<14" "nvidia-cuda-nvdisasm>=13.0,<14"
        touch "$VENV/bin/nvcc-ok"
    fi
    BIN="$(tools_bin "$VENV")"
    [[ -x "$BIN/nvcc" ]] || fail "nvcc not found after installing into $VENV"
    export PATH="$BIN:$PATH"
fi
NVCC_BIN="${NVCC:-$(command -v nvcc)}"
export PATH="$(dirname "$NVCC_BIN"):$PATH"
echo "cuda-check: nvcc = $NVCC_BIN ($("$NVCC_BIN" --version | tail -1))"
if ! command -v cuobjdump >/dev/null || ! command -v nvdisasm >/dev/null; then
    if [[ -d "$VENV" ]] && [[ -x "$(tools_bin "$VENV")/cuobjdump" ]]; then
        export PATH="$(tools_bin "$VENV"):$PATH"
    else
        "$PYTHON" -m venv "$VENV" 2>/dev/null || true
        "$VENV/bin/pip" install -q "nvidia-cuda-cuobjdump>=13.0,<14" "nvidia-cuda-nvdisasm>=13.0,<14"
        export PATH="$(tools_bin "$VENV"):$PATH"
    fi
fi
command -v cuobjdump >/dev/null || fail "cuobjdump not found"
command -v nvdisasm >/dev/null || fail "nvdisasm not found (cuobjdump -sass needs it)"

# --- 2. build --------------------------------------------------------------------------------
cargo build --release --features cuda
OUT="$(ls -td target/release/build/unitfp8-*/out 2>/dev/null | while read -r d; do [[ -f "$d/unitfp8.fatbin" ]] && echo "$d" && break; done)"
[[ -n "$OUT" ]] || fail "no embedded fatbin under target/release/build/unitfp8-*/out"
FATBIN="$OUT/unitfp8.fatbin"
LOG="$OUT/ptxas.log"
echo "cuda-check: fatbin $FATBIN ($(stat -c %s "$FATBIN") bytes)"

# --- 3. SASS and resource checks --------------------------------------------------------------
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cuobjdump -lelf "$FATBIN" >"$TMP/elves" || fail "cuobjdump cannot read the fatbin"
grep -q "sm_89" "$TMP/elves" || fail "no sm_89 machine code in the fatbin"
grep -q "sm_90a" "$TMP/elves" || fail "no sm_90a machine code in the fatbin"
cuobjdump -lptx "$FATBIN" >"$TMP/ptx"
grep -qE "(sm|compute)_89\.ptx" "$TMP/ptx" || fail "no compute_89 PTX in the fatbin"
cuobjdump -sass -arch sm_89 "$FATBIN" >"$TMP/sm89.sass"
cuobjdump -sass -arch sm_90a "$FATBIN" >"$TMP/sm90a.sass"

# Splits a SASS dump into one file per function: $TMP/<arch>/<name>.
split_functions() {
    mkdir -p "$TMP/$2"
    awk -v dir="$TMP/$2" '/Function : /{name=$3; next} name!=""{print > (dir "/" name)}' "$1"
}
split_functions "$TMP/sm89.sass" sm89
split_functions "$TMP/sm90a.sass" sm90a

status=0
check() { # arch kernel-glob instruction
    local n=0
    for f in "$TMP/$1"/$2; do
        [[ -f "$f" ]] || continue
        n=$((n + 1))
        if grep -q "$3" "$f"; then
            printf '  ok   %-6s %-40s %s x%d\n' "$1" "$(basename "$f")" "$3" "$(grep -c "$3" "$f")"
        else
            printf '  FAIL %-6s %-40s has no %s\n' "$1" "$(basename "$f")" "$3"
            status=1
        fi
    done
    [[ $n -gt 0 ]] || { echo "  FAIL no $1 kernel matches $2"; status=1; }
}
echo "cuda-check: tensor-core instructions"
check sm90a 'unitfp8_gemm_sm90_*' 'QGMMA'
check sm90a 'unitfp8_gemm_sm90_*' 'UTMALDG'
check sm89 'unitfp8_gemm_sm89_*' 'QMMA.16832.F32'

echo "cuda-check: local memory in SASS (spills)"
for f in "$TMP"/sm89/* "$TMP"/sm90a/*; do
    if grep -qE '\b(LDL|STL)\b' "$f"; then
        echo "  FAIL $(basename "$(dirname "$f")") $(basename "$f") uses local memory (LDL/STL)"
        status=1
    fi
done

echo "cuda-check: ptxas resource report ($LOG)"
kernels=$(grep -c "Compiling entry function" "$LOG" || true)
bad=$(grep -E "bytes stack frame" "$LOG" | grep -vc "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" || true)
echo "  $kernels kernel compilations; $bad with a stack frame or spills"
if [[ "$bad" != 0 ]]; then
    grep -B2 -E "bytes stack frame" "$LOG" | grep -B2 -vE "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" >&2
    status=1
fi
if grep -q "C7508\|setmaxnreg.*ignored" "$LOG"; then
    echo "  FAIL ptxas ignored setmaxnreg (warning C7508)"
    status=1
fi
echo "cuda-check: registers of the GEMM kernels"
awk '/Compiling entry function/{f=$7; a=$9} /Used [0-9]+ registers/{ if (f ~ /gemm/) print "  " a, f, $5 " registers"}' "$LOG" | tr -d "'" | sort -u

[[ $status == 0 ]] || fail "SASS/resource checks"

# --- 4. tests ---------------------------------------------------------------------------------
if [[ "${1:-}" != "--no-test" ]]; then
    cargo test --release --features cuda --test cuda -- --nocapture
    cargo test --release --features cuda --lib cuda
    # 5. the kernels themselves, on the host SIMT emulator, against the CPU reference, and a dry
    #    run of the GPU check script there (it also leaves target/release/cuda_device_test).
    scripts/cuda-emu.sh
    echo "cuda-check: target/release/cuda_device_test (gpu/run_checks.sh runs it on a GPU machine, next to the library)"
fi
echo "cuda-check: OK"

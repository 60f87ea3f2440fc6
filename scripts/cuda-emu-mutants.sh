#!/usr/bin/env bash
# Checks that the emulator-run device tests can fail: applies each deliberate kernel bug of
# kernels/emu/mutants.txt to a copy of kernels/, builds the stand-in libcuda.so from it and
# requires tests/cuda_device.rs to fail (a wrong result, a poisoned read, a guard-byte write, or
# a deadlock the emulator reports). Called by scripts/cuda-emu.sh with the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "cuda-emu-mutants: FAIL: $*" >&2; exit 1; }
exe="${1:?usage: cuda-emu-mutants.sh TEST_BINARY}"
PY="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Prints "filter @@ what" of mutant $2 after applying it to the kernels copy in $1, or nothing
# when there is no mutant $2.
apply() {
    "$PY" - "$1" "$2" <<'PY'
import sys
root, want = sys.argv[1], int(sys.argv[2])
rows = [l for l in open("kernels/emu/mutants.txt") if l.strip() and not l.startswith("#")]
if want >= len(rows):
    sys.exit(0)
file, old, new, test, what = [f.strip() for f in rows[want].split(" @@ ")]
old, new = old.replace("\\n", "\n"), new.replace("\\n", "\n")
path = root + "/" + file
s = open(path).read()
if s.count(old) != 1:
    sys.exit("mutant %d does not apply once to %s: %s" % (want, file, old))
open(path, "w").write(s.replace(old, new))
print(test + " @@ " + what)
PY
}
n=0
while :; do
    rm -rf "$work/kernels" && cp -r kernels "$work/kernels"
    info="$(apply "$work/kernels" "$n")" || fail "kernels/emu/mutants.txt"
    [[ -n "$info" ]] || break
    filter="${info%% @@ *}"
    what="${info#* @@ }"
    g++ -std=c++17 -O1 -ffp-contract=off -fPIC -shared -Wno-psabi -o "$work/libcuda.so" "$work/kernels/emu/fake_driver.cpp" ||
        fail "mutant does not compile: $what"
    # (In a subshell with stderr closed off: the emulator aborts the test process on a fault,
    # and the shell would report that.)
    if (UNITFP8_REQUIRE_DEVICE=1 LD_LIBRARY_PATH="$work" timeout 300 "$exe" --test-threads 1 "$filter" 2>&1 | cat >"$work/log") 2>/dev/null; then
        fail "the tests passed with a deliberate bug: $what"
    fi
    why=$(grep -m1 -oE "emulator: [^(]*|element [0-9]+: [^\"]*|guard byte|C\([0-9, ]+\)" "$work/log" || echo "a test failure")
    printf '  caught: %-58s (%s)\n' "$what" "$why"
    n=$((n + 1))
done
[[ $n -ge 1 ]] || fail "no mutants"
echo "cuda-emu-mutants: all $n deliberate bugs caught"

#!/usr/bin/env bash
# FFI tests of the C ABI: builds the release static and shared libraries, compiles the C test
# as C99 and as C++17 against each, runs every binary with the default back end and with
# UNITFP8_BACKEND=scalar, compiles the header alone as C and C++, runs the Python tests
# (ctypes + numpy + ml_dtypes, with ${PYTHON:-python3}) and checks the header is up to date.
# Exits nonzero on any failure. Set SKIP_PYTHON=1 to skip the Python part; set FFI_AARCH64=1 to
# also cross-build for aarch64 and run the C test under qemu-aarch64 (NEON and scalar back ends;
# needs the aarch64-unknown-linux-gnu Rust target, aarch64-linux-gnu-gcc and qemu-aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
CC="${CC:-cc}"
CXX="${CXX:-c++}"
PYTHON="${PYTHON:-python3}"
build="$root/ffi-tests/build"
mkdir -p "$build"
status=0
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; status=1; }

step "cargo build --release"
cargo build --release
lib="$root/target/release"
[[ -f "$lib/libunitfp8.a" && -f "$lib/libunitfp8.so" ]] || { echo "libraries missing" >&2; exit 1; }

step "header compiles alone (C99 pedantic, C++17)"
printf '#include "unitfp8.h"\nint main(void) { return unitfp8_version() == 0; }\n' >"$build/header_only.c"
"$CC" -std=c99 -Wall -Wextra -Werror -pedantic -I include -c "$build/header_only.c" -o "$build/header_only_c.o" || fail "header as C"
"$CXX" -x c++ -std=c++17 -Wall -Wextra -Werror -pedantic -I include -c "$build/header_only.c" -o "$build/header_only_cxx.o" || fail "header as C++"

step "compile the C test as C and C++, against the static and the shared library"
cflags=(-std=c99 -Wall -Wextra -Werror -pedantic -O2 -I include)
cxxflags=(-x c++ -std=c++17 -Wall -Wextra -Werror -pedantic -O2 -I include)
src="ffi-tests/c/test_ffi.c"
static_libs=("$lib/libunitfp8.a" -lpthread -ldl -lm)
shared_libs=(-L "$lib" -lunitfp8 -Wl,-rpath,"$lib" -lm)
bins=()
"$CC" "${cflags[@]}" "$src" "${static_libs[@]}" -o "$build/test_c_static" && bins+=(test_c_static) || fail "build test_c_static"
"$CC" "${cflags[@]}" "$src" "${shared_libs[@]}" -o "$build/test_c_shared" && bins+=(test_c_shared) || fail "build test_c_shared"
"$CXX" "${cxxflags[@]}" "$src" -x none "${static_libs[@]}" -o "$build/test_cxx_static" && bins+=(test_cxx_static) || fail "build test_cxx_static"
"$CXX" "${cxxflags[@]}" "$src" -x none "${shared_libs[@]}" -o "$build/test_cxx_shared" && bins+=(test_cxx_shared) || fail "build test_cxx_shared"
# The dependency list is read whole before it is searched: with pipefail, `ldd | grep -q` fails
# at random when grep exits on the first match and ldd is killed by SIGPIPE mid-write.
needs_libunitfp8() {
    local deps
    deps=$(readelf -d "$1") || { fail "readelf -d $1"; return 2; }
    [[ "$deps" == *"Shared library: [libunitfp8.so]"* ]]
}
if needs_libunitfp8 "$build/test_c_shared"; then :; else fail "test_c_shared does not load libunitfp8.so"; fi
if needs_libunitfp8 "$build/test_c_static"; then fail "test_c_static loads libunitfp8.so"; fi

for b in "${bins[@]}"; do
    for backend in default scalar; do
        step "$b ($backend back end)"
        if [[ "$backend" == scalar ]]; then
            UNITFP8_BACKEND=scalar "$build/$b" || fail "$b ($backend)"
        else
            env -u UNITFP8_BACKEND "$build/$b" || fail "$b ($backend)"
        fi
    done
done

if [[ "${FFI_AARCH64:-0}" == 1 ]]; then
    step "aarch64 cross build, C test under qemu-aarch64"
    if CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        cargo build --release --target aarch64-unknown-linux-gnu &&
        aarch64-linux-gnu-gcc "${cflags[@]}" "$src" \
            target/aarch64-unknown-linux-gnu/release/libunitfp8.a -lpthread -ldl -lm \
            -o "$build/test_c_aarch64"; then
        for backend in neon scalar; do
            step "test_c_aarch64 ($backend back end, qemu)"
            UNITFP8_BACKEND=$backend qemu-aarch64 -L /usr/aarch64-linux-gnu "$build/test_c_aarch64" ||
                fail "test_c_aarch64 ($backend)"
        done
    else
        fail "aarch64 build"
    fi
fi

if [[ "${SKIP_PYTHON:-0}" != 1 ]]; then
    step "Python tests ($PYTHON)"
    UNITFP8_LIB="$lib/libunitfp8.so" "$PYTHON" ffi-tests/python/run_all.py || fail "python tests"
fi

step "header up to date"
ffi-tests/check-header.sh || fail "header out of date"

if [[ $status -ne 0 ]]; then
    echo; echo "FFI tests FAILED" >&2
else
    echo; echo "FFI tests passed"
fi
exit $status

#!/usr/bin/env bash
# Install tests: `cargo cinstall` into temporary prefixes, then builds and runs programs against
# the installed library the way a user would, with no paths into this repository:
#   - the layout: header (identical to include/unitfp8.h), libunitfp8.so.0.x.y with SONAME
#     libunitfp8.so.0 and the .so.0 / .so links, libunitfp8.a, unitfp8.pc with Libs.private,
#     the CMake package; no debug info in the shared library;
#   - (a) C: the C ABI test suite (ffi-tests/c/test_ffi.c) and a version check (header macros =
#     unitfp8_version() = Cargo.toml), built with `pkg-config --cflags --libs unitfp8`;
#   - (b) static: the same from a static-only install (--library-type staticlib) with
#     `pkg-config --static`; readelf must show no libunitfp8.so among the needed libraries;
#   - (c) C++17 through CMake `find_package(unitfp8 0.1)` → unitfp8::unitfp8 and
#     unitfp8::unitfp8_static (readelf: no libunitfp8.so needed), and a request for an
#     incompatible version must be refused;
#   - (d) the C example trainer (examples/c, its Makefile) on a short run that must reach its
#     stated loss.
# Needs cargo-c (cargo cinstall), pkg-config, cmake, readelf (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
CC="${CC:-cc}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
step() { printf '\n== %s\n' "$*"; }
die() { echo "FAILED: $*" >&2; exit 1; }

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
major="${version%%.*}"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read the version from Cargo.toml"

step "cargo cinstall --release --prefix $tmp/prefix"
cargo cinstall --release --prefix "$tmp/prefix"
step "cargo cinstall --release --library-type staticlib --prefix $tmp/static"
cargo cinstall --release --library-type staticlib --prefix "$tmp/static"

step "installed layout"
p="$tmp/prefix"
# The library folder is cargo-c's default: lib/, or lib/<multiarch triple>/ on Debian-like systems.
libdir_of() {
    local pc
    pc="$(find "$1" -name unitfp8.pc -path '*/pkgconfig/*')"
    [[ -n "$pc" ]] || die "no unitfp8.pc under $1"
    dirname "$(dirname "$pc")"
}
lib="$(libdir_of "$p")"
slib="$(libdir_of "$tmp/static")"
echo "library folder: ${lib#"$p"/}"
for f in include/unitfp8.h "${lib#"$p"/}/libunitfp8.a" "${lib#"$p"/}/pkgconfig/unitfp8.pc" \
    "${lib#"$p"/}/libunitfp8.so.$version" share/cmake/unitfp8/unitfp8Config.cmake \
    share/cmake/unitfp8/unitfp8ConfigVersion.cmake; do
    [[ -f "$p/$f" ]] || die "$f not installed"
done
[[ "$(readlink "$lib/libunitfp8.so")" == "libunitfp8.so.$version" ]] || die "libunitfp8.so link"
[[ "$(readlink "$lib/libunitfp8.so.$major")" == "libunitfp8.so.$version" ]] || die "libunitfp8.so.$major link"
cmp "$p/include/unitfp8.h" include/unitfp8.h || die "the installed header differs from include/unitfp8.h"
dyn="$(readelf -d "$lib/libunitfp8.so.$version")"
[[ "$dyn" == *"Library soname: [libunitfp8.so.$major]"* ]] || die "SONAME is not libunitfp8.so.$major"
sections="$(readelf -S -W "$lib/libunitfp8.so.$version")"
[[ "$sections" != *".debug_info"* ]] || die "the shared library carries debug info"
grep -q '^Libs.private: .*-lpthread' "$lib/pkgconfig/unitfp8.pc" || die "unitfp8.pc lacks Libs.private"
[[ -f "$slib/libunitfp8.a" && ! -e "$slib/libunitfp8.so" ]] || die "the static-only install is not static only"
ls -l "$lib" "$p/include" "$p/share/cmake/unitfp8"
echo "layout ok"

export PKG_CONFIG_PATH="$lib/pkgconfig"
[[ "$(pkg-config --modversion unitfp8)" == "$version" ]] || die "pkg-config --modversion"

step "(a) C with pkg-config --cflags --libs unitfp8 (shared)"
# shellcheck disable=SC2046 # pkg-config output is meant to be split
"$CC" -std=c99 -Wall -Wextra -Werror -pedantic -O2 ffi-tests/c/test_ffi.c -o "$tmp/test_shared" \
    $(pkg-config --cflags --libs unitfp8) -lm
# shellcheck disable=SC2046
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic ffi-tests/install/version.c -o "$tmp/version_shared" \
    $(pkg-config --cflags --libs unitfp8)
dyn="$(readelf -d "$tmp/test_shared")"
[[ "$dyn" == *"Shared library: [libunitfp8.so.$major]"* ]] || die "the program does not need libunitfp8.so.$major"
(cd "$tmp" && LD_LIBRARY_PATH="$lib" ./version_shared "$version" && LD_LIBRARY_PATH="$lib" ./test_shared)

step "(b) C with pkg-config --static (static-only install)"
export PKG_CONFIG_PATH="$slib/pkgconfig"
echo "pkg-config --static --libs unitfp8: $(pkg-config --static --libs unitfp8)"
# shellcheck disable=SC2046
"$CC" -std=c99 -Wall -Wextra -Werror -pedantic -O2 ffi-tests/c/test_ffi.c -o "$tmp/test_static" \
    $(pkg-config --static --cflags --libs unitfp8)
# shellcheck disable=SC2046
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic ffi-tests/install/version.c -o "$tmp/version_static" \
    $(pkg-config --static --cflags --libs unitfp8)
for b in test_static version_static; do
    dyn="$(readelf -d "$tmp/$b")"
    [[ "$dyn" != *"libunitfp8.so"* ]] || die "$b needs libunitfp8.so"
done
(cd "$tmp" && ./version_static "$version" && ./test_static)

want="${version%.*}"
step "(c) C++17 through CMake find_package(unitfp8 $want)"
CMAKE_PREFIX_PATH="$p" cmake -S ffi-tests/install/cmake -B "$tmp/cmake" -DUNITFP8_WANT_VERSION="$want" \
    -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" || { cat "$tmp/cmake.log"; die "cmake configure"; }
cmake --build "$tmp/cmake" >"$tmp/cmake-build.log" || { cat "$tmp/cmake-build.log"; die "cmake build"; }
(cd "$tmp" && LD_LIBRARY_PATH="$lib" "$tmp/cmake/consumer")
echo "static: unitfp8::unitfp8_static"
CMAKE_PREFIX_PATH="$p" cmake -S ffi-tests/install/cmake -B "$tmp/cmake-static" -DUNITFP8_WANT_VERSION="$want" \
    -DUNITFP8_STATIC=ON -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake-static.log" ||
    { cat "$tmp/cmake-static.log"; die "cmake configure (static)"; }
cmake --build "$tmp/cmake-static" >"$tmp/cmake-static-build.log" ||
    { cat "$tmp/cmake-static-build.log"; die "cmake build (static)"; }
dyn="$(readelf -d "$tmp/cmake-static/consumer")"
[[ "$dyn" != *"libunitfp8.so"* ]] || die "the unitfp8::unitfp8_static program needs libunitfp8.so"
(cd "$tmp" && "$tmp/cmake-static/consumer")
if CMAKE_PREFIX_PATH="$p" cmake -S ffi-tests/install/cmake -B "$tmp/cmake-bad" \
    -DUNITFP8_WANT_VERSION="$((major + 1)).0" >"$tmp/cmake-bad.log" 2>&1; then
    die "find_package accepted version $((major + 1)).0 of unitfp8 $version"
fi
grep -q "unitfp8Config.cmake, version: $version" "$tmp/cmake-bad.log" ||
    { cat "$tmp/cmake-bad.log"; die "find_package failed for another reason than the version"; }
echo "find_package(unitfp8 $((major + 1)).0) refused, as it must be"

step "(d) examples/c: make, then a short training run"
cp examples/c/mus_train.c examples/c/Makefile "$tmp/"
PKG_CONFIG_PATH="$lib/pkgconfig" make -s -C "$tmp" mus_train
(cd "$tmp" && LD_LIBRARY_PATH="$lib" ./mus_train --steps 300 --target 0.80)

echo; echo "install tests passed"

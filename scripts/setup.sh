#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian machine with rustup (idempotent):
# Debian qemu-user + the aarch64 cross toolchain, the aarch64 and bare-metal Rust targets,
# cbindgen 0.29.4, cargo-c 0.10.24 (cargo cinstall) with pkg-config, cmake and libssl-dev for the
# install tests, and a Python venv (.venv) with numpy, ml_dtypes, pytest and torch (the Python
# package's tests; torch from PyPI is large, so it is installed once per venv).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
need_apt=()
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v g++ >/dev/null || need_apt+=(g++)
command -v readelf >/dev/null || need_apt+=(binutils)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cmake >/dev/null || need_apt+=(cmake)
# cargo-c builds against the system OpenSSL: libssl-dev is a 2.4 MB package, while cargo-c's
# vendored-openssl feature compiles OpenSSL (about 2.7 more CPU-minutes).
if ! command -v cargo-cinstall >/dev/null && ! pkg-config --exists openssl 2>/dev/null; then
  need_apt+=(libssl-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add aarch64-unknown-linux-gnu x86_64-unknown-none aarch64-unknown-none >/dev/null

if [[ "$(cbindgen --version 2>/dev/null || true)" != *0.29.4* ]]; then
  echo "setup: cargo install cbindgen 0.29.4"
  cargo install cbindgen --version 0.29.4 --locked --quiet
fi

# cargo-c 0.10.24 is the newest release that builds with Rust 1.95 (0.10.25 needs 1.96).
if [[ "$(cargo cinstall --version 2>/dev/null || true)" != *0.10.24* ]]; then
  echo "setup: cargo install cargo-c 0.10.24 (a few minutes, once)"
  cargo install cargo-c --version 0.10.24 --locked --quiet
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: python venv .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import numpy, ml_dtypes' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check numpy ml_dtypes
fi
if ! .venv/bin/python -c 'import torch, pytest' 2>/dev/null; then
  # torch from PyPI with its CUDA libraries is about 5.5 GB installed, plus about 3 GB of
  # downloads unpacked under the temporary directory while pip works. --no-cache-dir keeps pip
  # from storing another copy of the wheels in its cache.
  need_gb=9
  for dir in .venv "${TMPDIR:-/tmp}"; do
    free_gb=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
    if [ "$free_gb" -lt "$need_gb" ]; then
      echo "setup: error: installing torch needs about $need_gb GB free; the file system of $dir has $free_gb GB" >&2
      exit 1
    fi
  done
  echo "setup: pip install torch pytest (once per venv)"
  .venv/bin/pip install --quiet --disable-pip-version-check --no-cache-dir torch pytest
fi
echo "setup: ok"

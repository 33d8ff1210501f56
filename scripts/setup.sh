#!/usr/bin/env bash
# Installs what building and testing Collective needs on a fresh Debian machine: libclang for
# RocksDB's bindgen, a C++ compiler, FUSE 3, nftables and iproute2 for the fault-injection tests,
# libfaketime for the clock-skew test, e2fsprogs, xfsprogs (xfs_io shuts a file system down) and
# util-linux for the damaged- and failed-disk tests (a loop-mounted ext4), openssl for certificate
# checks. Idempotent; run as root (or with sudo available).
set -euo pipefail

packages=(build-essential clang libclang-dev pkg-config fuse3 libfuse3-dev nftables iproute2 openssl procps libfaketime e2fsprogs xfsprogs util-linux mount)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest >/dev/null
fi

#!/usr/bin/env bash
# The main job: installs what is missing, builds the release binary and runs `collective up`
# (one process: a whole single-machine member) with any arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/target-dir.sh
cargo build -j2 --release --bin collective
exec "${CARGO_TARGET_DIR:-target}/release/collective" up "$@"

#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test (unit, conformance, and the
# multi-process fault-injection tests) in the debug profile.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/target-dir.sh
cargo build -j2 --bin collective
cargo nextest run -j2 --workspace --no-fail-fast "$@"

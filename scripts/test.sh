#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests that drive
# the real pachd and pachctl binaries on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
scripts/test-tools.sh
cargo build --bins
cargo test --workspace --no-fail-fast "$@"

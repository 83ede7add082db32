#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests that drive
# the real pachd and pachctl binaries on loopback, then ceph's s3-tests
# against the S3 gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
scripts/test-tools.sh
cargo build --bins
cargo test --workspace --no-fail-fast "$@"
# ceph's S3 conformance suite against the S3 gateway (the listed tests).
scripts/s3-tests.sh

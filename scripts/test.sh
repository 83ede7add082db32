#!/usr/bin/env bash
# Runs every test: unit tests of each crate, the end-to-end tests that drive
# the real pachd and pachctl binaries on loopback, python-pachyderm 3.1.0's
# own suite against a fresh pachd (scripts/python-suite.sh), and ceph's
# s3-tests against the S3 gateway (scripts/s3-tests.sh); the peer suites
# twice, without auth and with it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
scripts/test-tools.sh
cargo build --bins
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# The peer suites judge the wire API and the S3 gateway; run only for a full
# run (no test filter).
if [ $# -eq 0 ]; then
  scripts/python-suite.sh || status=$?
  # Once more with auth active, every call carrying an admin's token.
  PYSUITE_AS_ADMIN=1 scripts/python-suite.sh || status=$?
  scripts/s3-tests.sh || status=$?
  # Once more with auth active and over TLS, every request signed with a
  # pachd token.
  S3_TESTS_SECURE=1 scripts/s3-tests.sh || status=$?
fi
exit $status

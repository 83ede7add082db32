#!/usr/bin/env bash
# Builds and runs pachd on the embedded default: metadata in redb and objects
# in a local directory, both under the data directory, serving on localhost:30650.
# Extra arguments go to pachd (e.g. --data-dir /tmp/pachd).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
cargo build --release --bin pachd --bin pachctl
BIN=${CARGO_TARGET_DIR:-$(pwd)/target}/release
echo "pachctl is at $BIN/pachctl" >&2
exec "$BIN/pachd" "$@"

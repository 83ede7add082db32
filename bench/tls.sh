#!/usr/bin/env bash
# The cost of TLS: the same operations against two pachds side by side in
# this same run, one serving plaintext and one TLS (a throwaway CA and
# certificate made with openssl), ratios TLS/plaintext (goal under 1.10).
# Usage: bench/tls.sh [MIB]   (default 512)
#   put / get: pachctl put file and get file of MIB MiB of random bytes
#     (from and to the page cache, so that the transport is what differs);
#   small calls: N (default 2000) InspectRepo calls to each pachd through
#     python-pachyderm 3.1.0 (a pachctl per call would time process starts),
#     one connection to each, in batches of BATCH (default 100) to one then
#     the other, the median of the batch means (bench/paired_calls.py);
#   under load: CLIENTS (default 4) such clients at once, the mean of their
#     medians.
#   RUNS (default 3) alternating runs of each, medians.
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-tls), RUNS, N, BATCH, CLIENTS,
#      PYPACH_VENV (as bench/clients.sh), CARGO_TARGET_DIR (as for cargo),
#      BENCH_BIN (a directory holding pachd, pachctl and gen-bytes, to
#      measure another build; default: this checkout's release build).
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-512}
RUNS=${RUNS:-3}
N=${N:-2000}
BATCH=${BATCH:-100}
CLIENTS=${CLIENTS:-4}
W=${BENCH_DIR:-/tmp/pach-bench-tls}

if [ -n "${BENCH_BIN:-}" ]; then
  B=$BENCH_BIN
else
  scripts/prereqs.sh
  cargo build --release -q -p pachd -p pachctl -p pach-bench
  B=${CARGO_TARGET_DIR:-$(pwd)/target}/release
fi
. bench/lib.sh
pypach_install
rm -rf "$W"; mkdir -p "$W"

# A CA and a certificate for 127.0.0.1 signed by it.
scripts/loopback-ca.sh "$W/tls"

PLAIN=$((30000 + RANDOM % 1000)); SECURE=$((PLAIN + 1000))
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # NAME PORT [args]
  local name=$1 port=$2; shift 2
  "$B/pachd" --data-dir "$W/$name" --address "127.0.0.1:$port" --s3gateway-address "" \
    --log-level warn "$@" >"$W/$name.out" 2>"$W/$name.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$W/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "pachd $name did not start; see $W/$name.log" >&2; exit 1
}
start plain "$PLAIN"
start secure "$SECURE" --tls-cert "$W/tls/tls.crt" --tls-key "$W/tls/tls.key"
pc() { # plain|secure ARGS...
  local which=$1; shift
  if [ "$which" = plain ]; then
    PACHD_ADDRESS=grpc://127.0.0.1:$PLAIN PACH_CONFIG=$W/config.json "$B/pachctl" "$@"
  else
    PACHD_ADDRESS=grpcs://127.0.0.1:$SECURE PACHD_SERVER_CAS=$W/tls/ca.pem PACH_CONFIG=$W/config.json "$B/pachctl" "$@"
  fi
}
export PAIRED_B_CA=$W/tls/ca.pem

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr); load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
"$B/gen-bytes" "${MIB}M" 5 >"$W/src"
cat "$W/src" >/dev/null
for s in plain secure; do pc "$s" create repo big; done
declare -A T
measure_pair plain "$PLAIN" secure "$SECURE"
report_pair plain secure "plaintext" "TLS" "TLS/plain"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$W"

#!/usr/bin/env bash
# The cost of access control: the same operations against two pachds side by
# side in this same run, one without auth and one with auth active, driven
# as a non-admin user who owns the repo (so every call looks up its token,
# its groups, the admins and the repo's ACL), ratios auth/none (goal under
# 1.10).
# Usage: bench/auth.sh [MIB]   (default 512)
#   put / get: pachctl put file and get file of MIB MiB of random bytes
#     (from and to the page cache);
#   small calls: N (default 2000) InspectRepo calls to each pachd through
#     python-pachyderm 3.1.0, one connection to each, in batches of BATCH
#     (default 100) to one then the other, the median of the batch means;
#   under load: CLIENTS (default 4) such clients at once, the mean of their
#     medians.
#   RUNS (default 3) alternating runs of each, medians.
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-auth), RUNS, N,
#      PYPACH_VENV (as bench/clients.sh), CARGO_TARGET_DIR (as for cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-512}
RUNS=${RUNS:-3}
N=${N:-2000}
BATCH=${BATCH:-100}
CLIENTS=${CLIENTS:-4}
W=${BENCH_DIR:-/tmp/pach-bench-auth}

scripts/prereqs.sh
cargo build --release -q -p pachd -p pachctl -p pach-bench
B=${CARGO_TARGET_DIR:-$(pwd)/target}/release
. bench/lib.sh
pypach_install
rm -rf "$W"; mkdir -p "$W"

OPEN=$((30000 + RANDOM % 1000)); GUARDED=$((OPEN + 1000))
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # NAME PORT
  local name=$1 port=$2
  "$B/pachd" --data-dir "$W/$name" --address "127.0.0.1:$port" --s3gateway-address "" \
    --log-level warn >"$W/$name.out" 2>"$W/$name.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$W/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "pachd $name did not start; see $W/$name.log" >&2; exit 1
}
start open "$OPEN"
start guarded "$GUARDED"
pc() { # open|guarded ARGS...
  local which=$1; shift
  if [ "$which" = open ]; then
    PACHD_ADDRESS=127.0.0.1:$OPEN PACH_CONFIG=$W/open.json "$B/pachctl" "$@"
  else
    PACHD_ADDRESS=127.0.0.1:$GUARDED PACH_CONFIG=$W/guarded.json "$B/pachctl" "$@"
  fi
}
pc guarded enterprise activate bench >/dev/null
pc guarded auth activate --initial-admin robot:admin >/dev/null
TOKEN=$(pc guarded auth get-auth-token -q robot:bench)
echo "$TOKEN" | pc guarded auth use-auth-token 2>/dev/null
export PAIRED_B_TOKEN=$TOKEN
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr); load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
"$B/gen-bytes" "${MIB}M" 5 >"$W/src"
cat "$W/src" >/dev/null
for s in open guarded; do pc "$s" create repo big; done
[ "$(pc guarded auth get big)" = "robot:bench: OWNER" ] || { echo "robot:bench does not own the repo" >&2; exit 1; }
declare -A T
measure_pair open "$OPEN" guarded "$GUARDED"
report_pair open guarded "no auth" "auth" "auth/none"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$W"

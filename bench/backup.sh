#!/usr/bin/env bash
# extract / restore benchmarks, printed next to a baseline run side by side in
# this same run. Usage: bench/backup.sh [--quick]
#   metadata: extract --no-objects and restore of a cluster of COMMITS commits
#     x FILES new files each (10,000 x 100 = 1,000,000 files); goal > 100,000
#     files/s each way;
#   with objects: extract and restore (into an empty bucket) against `cp -r`
#     of the bucket to the same disk; goal within 2x.
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-backup), BENCH_COMMITS,
#      BENCH_FILES (files per commit).
set -euo pipefail
cd "$(dirname "$0")/.."
COMMITS=${BENCH_COMMITS:-10000}; FILES=${BENCH_FILES:-100}
[ "${1:-}" = "--quick" ] && COMMITS=300
W=${BENCH_DIR:-/tmp/pach-bench-backup}
TOTAL=$((COMMITS * FILES))

scripts/prereqs.sh
cargo build --release -q -p pachd -p pachctl -p pach-bench
B=$(pwd)/target/release
rm -rf "$W"; mkdir -p "$W/a/data"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # NAME PORT [pachd args...]
  local name=$1 port=$2; shift 2
  "$B/pachd" --data-dir "$W/$name/data" --address "127.0.0.1:$port" --log-level warn "$@" >"$W/$name.out" 2>"$W/$name.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$W/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "pachd $name did not start; see $W/$name.log" >&2; exit 1
}
pc() { local port=$1; shift; PACHD_ADDRESS=127.0.0.1:$port PACH_CONFIG=$W/config.json "$B/pachctl" "$@"; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"

"$B/history-repo" "$W/a/data" hist "$COMMITS" "$FILES" >/dev/null
BUCKET=$(du -sb "$W/a/data/objects" | cut -f1)
echo "cluster: $COMMITS commits, $TOTAL files, bucket $BUCKET bytes"
start a 30721

sync; t0=$(now); pc 30721 extract --no-objects > "$W/meta.stream" 2>/dev/null; sync; t1=$(now); EXM=$(elapsed "$t0" "$t1")
sync; t0=$(now); cp -r "$W/a/data/objects" "$W/b-bucket"; sync; t1=$(now); CP=$(elapsed "$t0" "$t1")
mkdir -p "$W/b/data"; start b 30722 --storage "file://$W/b-bucket"
t0=$(now); pc 30722 restore < "$W/meta.stream" 2>/dev/null; sync; t1=$(now); RSM=$(elapsed "$t0" "$t1")
pc 30722 verify --from 127.0.0.1:30721 >/dev/null 2>&1 || { echo "restored cluster differs" >&2; exit 1; }
echo "metadata: extract --no-objects ${EXM} s = $(awk -v n=$TOTAL -v t=$EXM 'BEGIN{printf "%.0f", n/t}') files/s; restore ${RSM} s = $(awk -v n=$TOTAL -v t=$RSM 'BEGIN{printf "%.0f", n/t}') files/s (goal > 100000 each way); stream $(stat -c %s "$W/meta.stream") bytes"

sync; t0=$(now); pc 30721 extract > "$W/full.stream" 2>/dev/null; sync; t1=$(now); EXF=$(elapsed "$t0" "$t1")
mkdir -p "$W/c/data"; start c 30723
sync; t0=$(now); pc 30723 restore < "$W/full.stream" 2>/dev/null; sync; t1=$(now); RSF=$(elapsed "$t0" "$t1")
pc 30723 verify --from 127.0.0.1:30721 >/dev/null 2>&1 || { echo "restored cluster differs" >&2; exit 1; }
echo "with objects: cp -r of the bucket ${CP} s; extract ${EXF} s = $(awk -v a=$EXF -v b=$CP 'BEGIN{printf "%.2f", a/b}')x; restore into an empty bucket ${RSF} s = $(awk -v a=$RSF -v b=$CP 'BEGIN{printf "%.2f", a/b}')x (goal <= 2x each)"

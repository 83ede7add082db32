#!/usr/bin/env bash
# extract / restore benchmarks, printed next to a baseline run side by side in
# this same run. Usage: bench/backup.sh [--quick] [COMMITS...]
#   Each size COMMITS (default: 1000 and 10000) builds a cluster of COMMITS
#   commits x FILES new files each (10,000 x 100 = 1,000,000 files), then:
#   metadata: extract --no-objects and restore of it over a copied bucket;
#     goal > 100,000 files/s each way;
#   with objects: extract and restore (into an empty bucket) against `cp -r`
#     of the bucket to the same disk; goal within 2x;
#   memory: the peak RSS (VmHWM, reset before each operation) of the pachd
#     doing each extract and restore, and that peak less the size of the
#     pachd's metadata store file: redb caches the pages of the store that
#     are read or written (the whole store, at these sizes; at most 1 GiB),
#     which is the store's memory, not the operation's. With two sizes or
#     more, the last line gives each figure of the largest size over that of
#     the smallest: the operations' memory must stay flat (goal < 1.5x for
#     10x the commits, records and files).
#   pachyderm format: the same cluster extracted in Pachyderm's format
#     (`extract --format pachyderm`) and restored into an empty pachd, files/s
#     and peak RSS next to our own stream's (sizes up to BENCH_PACHYDERM_MAX
#     commits, default 1000: the import is the slower one).
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-backup), BENCH_FILES
#      (files per commit), BENCH_COMMITS (one size, as a single argument),
#      BENCH_REPOS (the commits spread over that many repos, default 1:
#      Pachyderm's format carries each commit's whole tree, so one repo's
#      long history makes a stream that grows with its square),
#      CARGO_TARGET_DIR (where the release binaries are built, as for cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${BENCH_FILES:-100}
REPOS=${BENCH_REPOS:-1}
SIZES=()
for a in "$@"; do
  case "$a" in
    --quick) SIZES+=(100 300) ;;
    *) SIZES+=("$a") ;;
  esac
done
[ ${#SIZES[@]} -eq 0 ] && SIZES=(${BENCH_COMMITS:-1000 10000})
W=${BENCH_DIR:-/tmp/pach-bench-backup}

scripts/prereqs.sh
cargo build --release -q -p pachd -p pachctl -p pach-bench
B=${CARGO_TARGET_DIR:-$(pwd)/target}/release
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
declare -A PID
trap 'for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # NAME PORT [pachd args...]
  local name=$1 port=$2; shift 2
  "$B/pachd" --data-dir "$W/$name/data" --address "127.0.0.1:$port" --log-level warn "$@" >"$W/$name.out" 2>"$W/$name.log" &
  PID[$name]=$!
  for _ in $(seq 100); do grep -q listening "$W/$name.out" 2>/dev/null && return; sleep 0.1; done
  echo "pachd $name did not start; see $W/$name.log" >&2; exit 1
}
stop() { kill "${PID[$1]}" 2>/dev/null || true; wait "${PID[$1]}" 2>/dev/null || true; unset "PID[$1]"; }
pc() { local port=$1; shift; PACHD_ADDRESS=127.0.0.1:$port PACH_CONFIG=$W/config.json "$B/pachctl" "$@"; }
# Peak RSS of a pachd: reset it before an operation, read it (MiB) after.
reset_peak() { echo 5 > "/proc/${PID[$1]}/clear_refs"; }
peak_mib() { awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/${PID[$1]}/status"; }
# The peak less the pachd's metadata store (the most its page cache holds).
own_mib() { awk -v p="$(peak_mib "$1")" -v s="$(stat -c %s "$W/$1/data/meta.redb")" 'BEGIN{printf "%.1f", p - s/1048576}'; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN{printf "%.0f", n/t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"

declare -A MEM OWN
for COMMITS in "${SIZES[@]}"; do
  TOTAL=$((COMMITS * FILES))
  rm -rf "$W"; mkdir -p "$W/a/data"
  [ $((COMMITS % REPOS)) -eq 0 ] || { echo "BENCH_REPOS ($REPOS) must divide the commits ($COMMITS)" >&2; exit 1; }
  for r in $(seq "$REPOS"); do
    "$B/history-repo" "$W/a/data" "hist$r" $((COMMITS / REPOS)) "$FILES" >/dev/null
  done
  BUCKET=$(du -sb "$W/a/data/objects" | cut -f1)
  echo "== cluster: $COMMITS commits in $REPOS repo(s), $TOTAL files, bucket $BUCKET bytes, metadata store $(stat -c %s "$W/a/data/meta.redb") bytes"
  start a 30721
  IDLE=$(peak_mib a)

  reset_peak a
  sync; t0=$(now); pc 30721 extract --no-objects > "$W/meta.stream" 2>/dev/null; sync; t1=$(now); EXM=$(elapsed "$t0" "$t1")
  MEM[$COMMITS,xm]=$(peak_mib a); OWN[$COMMITS,xm]=$(own_mib a)
  sync; t0=$(now); cp -r "$W/a/data/objects" "$W/b-bucket"; sync; t1=$(now); CP=$(elapsed "$t0" "$t1")
  mkdir -p "$W/b/data"; start b 30722 --storage "file://$W/b-bucket" --take-over-bucket
  reset_peak b
  t0=$(now); pc 30722 restore < "$W/meta.stream" 2>/dev/null; sync; t1=$(now); RSM=$(elapsed "$t0" "$t1")
  MEM[$COMMITS,rm]=$(peak_mib b); OWN[$COMMITS,rm]=$(own_mib b)
  pc 30722 verify --from 127.0.0.1:30721 >/dev/null 2>&1 || { echo "restored cluster differs" >&2; exit 1; }
  stop b
  echo "metadata: extract --no-objects ${EXM} s = $(rate $TOTAL $EXM) files/s; restore ${RSM} s = $(rate $TOTAL $RSM) files/s (goal > 100000 each way); stream $(stat -c %s "$W/meta.stream") bytes"

  reset_peak a
  sync; t0=$(now); pc 30721 extract > "$W/full.stream" 2>/dev/null; sync; t1=$(now); EXF=$(elapsed "$t0" "$t1")
  MEM[$COMMITS,xf]=$(peak_mib a); OWN[$COMMITS,xf]=$(own_mib a)
  mkdir -p "$W/c/data"; start c 30723
  reset_peak c
  sync; t0=$(now); pc 30723 restore < "$W/full.stream" 2>/dev/null; sync; t1=$(now); RSF=$(elapsed "$t0" "$t1")
  MEM[$COMMITS,rf]=$(peak_mib c); OWN[$COMMITS,rf]=$(own_mib c)
  pc 30723 verify --from 127.0.0.1:30721 >/dev/null 2>&1 || { echo "restored cluster differs" >&2; exit 1; }
  stop c
  echo "with objects: cp -r of the bucket ${CP} s; extract ${EXF} s = $(ratio $EXF $CP)x; restore into an empty bucket ${RSF} s = $(ratio $RSF $CP)x (goal <= 2x each)"
  if [ "$COMMITS" -le "${BENCH_PACHYDERM_MAX:-1000}" ]; then
    # The same cluster through Pachyderm's extract format (Op1_9 ops,
    # snappy-framed), restored into an empty pachd, next to our own stream.
    reset_peak a
    sync; t0=$(now); pc 30721 extract --format pachyderm > "$W/pach.stream" 2>/dev/null; sync; t1=$(now); EXP=$(elapsed "$t0" "$t1")
    XP_MEM=$(peak_mib a)
    mkdir -p "$W/d/data"; start d 30724
    reset_peak d
    sync; t0=$(now); pc 30724 restore < "$W/pach.stream" 2>/dev/null; sync; t1=$(now); RSP=$(elapsed "$t0" "$t1")
    RP_MEM=$(peak_mib d); RP_OWN=$(own_mib d)
    GOT=0
    for r in $(seq "$REPOS"); do GOT=$((GOT + $(pc 30724 list commit "hist$r@master" --raw | jq -s length))); done
    [ "$GOT" -eq "$COMMITS" ] || { echo "the Pachyderm-format restore holds $GOT commits, not $COMMITS" >&2; exit 1; }
    stop d
    echo "pachyderm format: extract ${EXP} s = $(rate $TOTAL $EXP) files/s, ${XP_MEM} MiB; restore ${RSP} s = $(rate $TOTAL $RSP) files/s, peak ${RP_MEM} MiB (${RP_OWN} MiB less the metadata store); our stream: extract ${EXF} s = $(rate $TOTAL $EXF) files/s, restore ${RSF} s = $(rate $TOTAL $RSF) files/s, peak ${MEM[$COMMITS,rf]} MiB; stream $(stat -c %s "$W/pach.stream") bytes vs $(stat -c %s "$W/full.stream")"
  fi
  stop a
  echo "memory: pachd peak RSS ${IDLE} MiB idle; extract --no-objects ${MEM[$COMMITS,xm]} MiB, restore ${MEM[$COMMITS,rm]} MiB; extract ${MEM[$COMMITS,xf]} MiB, restore ${MEM[$COMMITS,rf]} MiB"
  echo "memory less the metadata store ($(stat -c %s "$W/a/data/meta.redb") bytes at the source): extract --no-objects ${OWN[$COMMITS,xm]} MiB, restore ${OWN[$COMMITS,rm]} MiB; extract ${OWN[$COMMITS,xf]} MiB, restore ${OWN[$COMMITS,rf]} MiB"
  rm -rf "$W"
done

if [ ${#SIZES[@]} -gt 1 ]; then
  S=${SIZES[0]}; L=${SIZES[-1]}
  r() { local -n m=$1; echo "extract --no-objects $(ratio "${m[$L,xm]}" "${m[$S,xm]}")x, restore $(ratio "${m[$L,rm]}" "${m[$S,rm]}")x; extract $(ratio "${m[$L,xf]}" "${m[$S,xf]}")x, restore $(ratio "${m[$L,rf]}" "${m[$S,rf]}")x"; }
  echo "peak RSS, $L commits over $S ($(ratio $L $S)x the records and files): $(r MEM)"
  echo "peak RSS less the metadata store, $L commits over $S: $(r OWN) (goal < 1.5x each)"
fi

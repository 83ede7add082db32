#!/usr/bin/env bash
# Pipeline benchmarks, each printed as a ratio against a baseline run side by
# side in this same run. Usage: bench/pipelines.sh [--quick]
#   per-datum overhead: a pipeline of N one-file datums running `cp` (through
#     sh, as Pachyderm pipelines do) against a shell loop doing the same N
#     copies the same way; goal < 5 ms of overhead per datum;
#   incremental: after changing one of the N files, the next job (one datum
#     runs) against the first job; goal < 2% of its time.
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-pps), BENCH_DATUMS (10000),
#      BENCH_PARALLELISM (parallelism_spec.constant, default 1),
#      CARGO_TARGET_DIR (where the release binaries are built, as for cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_DATUMS:-10000}; [ "${1:-}" = "--quick" ] && N=500
PAR=${BENCH_PARALLELISM:-1}
W=${BENCH_DIR:-/tmp/pach-bench-pps}

scripts/prereqs.sh
cargo build --release -q -p pachd -p pachctl
T=${CARGO_TARGET_DIR:-target}
case "$T" in /*) ;; *) T=$(pwd)/$T ;; esac
B=$T/release
rm -rf "$W"; mkdir -p "$W/files" "$W/loop-out"
PORT=30712
export PACHD_ADDRESS=127.0.0.1:$PORT PACH_CONFIG=$W/config.json
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
"$B/pachd" --data-dir "$W/data" --address "$PACHD_ADDRESS" --log-level warn >"$W/pachd.out" 2>>"$W/pachd.log" &
PACHD_PID=$!
trap 'kill $PACHD_PID 2>/dev/null; wait $PACHD_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$W/pachd.out" 2>/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr); $N datums, parallelism $PAR"

for i in $(seq -w 1 "$N"); do echo "file $i" > "$W/files/f$i"; done
"$B/pachctl" create repo many
"$B/pachctl" put file many@master:/ -r -f "$W/files" >/dev/null

# Baseline: the same N copies, one `sh -c cp` process per file.
t0=$(now)
for f in "$W"/files/*; do sh -c 'cp "$1" "$2"' sh "$f" "$W/loop-out/"; done
t1=$(now); LOOP=$(elapsed "$t0" "$t1")

cat > "$W/cp.json" <<JSON
{"pipeline": {"name": "copy"},
 "transform": {"cmd": ["sh", "-c", "cp \"\$many\" /pfs/out/"]},
 "parallelism_spec": {"constant": $PAR},
 "input": {"pfs": {"repo": "many", "glob": "/*"}}}
JSON
t0=$(now)
"$B/pachctl" create pipeline -f "$W/cp.json"
"$B/pachctl" flush commit many@master >/dev/null
t1=$(now); JOB=$(elapsed "$t0" "$t1")
STATE=$("$B/pachctl" list job -p copy --raw | jq -r '.state' | head -1)
OUT=$("$B/pachctl" list file copy@master:/ --raw | wc -l)
echo "per-datum: shell loop ${LOOP} s, pipeline job ${JOB} s ($STATE, $OUT output files); overhead $(awk -v j="$JOB" -v l="$LOOP" -v n="$N" 'BEGIN{printf "%.2f", (j-l)*1000/n}') ms per datum (goal < 5 ms); job/loop = $(awk -v j="$JOB" -v l="$LOOP" 'BEGIN{printf "%.2f", j/l}')x"

echo "file changed" | "$B/pachctl" put file many@master:/f$(printf "%0${#N}d" 1) -f - >/dev/null
t0=$(now)
"$B/pachctl" flush commit many@master >/dev/null
t1=$(now); INC=$(elapsed "$t0" "$t1")
RAN=$("$B/pachctl" list job -p copy --raw | jq -r '.data_processed' | head -1)
echo "incremental: after changing 1 of $N files the next job ran $RAN datum(s) in ${INC} s = $(awk -v a="$INC" -v b="$JOB" 'BEGIN{printf "%.2f", 100*a/b}')% of the first job (goal < 2%)"

#!/usr/bin/env bash
# Cluster-mode benchmark: a real etcd and a real S3 server (Garage) on
# loopback, against the embedded default, side by side in this same run.
#   put file: `put file -r` of a tree into the cluster (etcd + Garage) and
#     into the embedded default; ratio cluster/embedded;
#   jobs: a pipeline of N one-file datums (`sh -c cp`), parallelism_spec W,
#     run by W `pachd worker` processes (pachd itself runs none) and by the
#     embedded default; for W = 1, 2, 4; ratio cluster/embedded and speed-up
#     over W = 1.
# Usage: bench/workers.sh [--quick]
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-workers), BENCH_DATUMS (10000),
#      BENCH_BUCKET=file to put the cluster's objects in a local directory
#      instead of Garage (separates the object store's cost from etcd's).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_DATUMS:-10000}; FILES=2000; BIG_MIB=32
[ "${1:-}" = "--quick" ] && { N=400; FILES=200; BIG_MIB=4; }
W=${BENCH_DIR:-/tmp/pach-bench-workers}

scripts/prereqs.sh
scripts/test-tools.sh
cargo build --release -q -p pachd -p pachctl
B=${CARGO_TARGET_DIR:-$(pwd)/target}/release
GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
rm -rf "$W"; mkdir -p "$W/tree" "$W/files" "$W/garage"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 did not open" >&2; exit 1; }

etcd --name b1 --data-dir "$W/etcd" --max-txn-ops 1024 \
  --listen-client-urls http://127.0.0.1:23791 --advertise-client-urls http://127.0.0.1:23791 \
  --listen-peer-urls http://127.0.0.1:23801 --initial-advertise-peer-urls http://127.0.0.1:23801 \
  --initial-cluster b1=http://127.0.0.1:23801 --initial-cluster-state new \
  --listen-metrics-urls http://127.0.0.1:23811 >"$W/etcd.log" 2>&1 &
PIDS+=($!)
KEY=GK0123456789abcdef01234567; SECRET=$(printf '%064d' 7)
cat > "$W/garage.toml" <<TOML
metadata_dir = "$W/garage/meta"
data_dir = "$W/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:23901"
rpc_public_addr = "127.0.0.1:23901"
rpc_secret = "$(printf '%064d' 3)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:23900"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:23903"
admin_token = "bench"
TOML
GARAGE_DEFAULT_ACCESS_KEY=$KEY GARAGE_DEFAULT_SECRET_KEY=$SECRET GARAGE_DEFAULT_BUCKET=bench \
  "$GARAGE" -c "$W/garage.toml" server --single-node --default-bucket >"$W/garage.log" 2>&1 &
PIDS+=($!)
wait_port 23791; wait_port 23900
BUCKET_URL=s3://bench
CLUSTER="etcd+garage"
[ "${BENCH_BUCKET:-}" = file ] && BUCKET_URL=file://$W/bucket && CLUSTER="etcd+local bucket" && mkdir -p "$W/bucket"
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=garage \
  AWS_ENDPOINT=http://127.0.0.1:23900 AWS_ALLOW_HTTP=true
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr); etcd $(etcd --version | head -1 | awk '{print $3}'), objects in $BUCKET_URL"

# Inputs.
for d in $(seq 1 20); do mkdir -p "$W/tree/d$d"; done
for i in $(seq 1 "$FILES"); do head -c 16384 /dev/urandom > "$W/tree/d$((i % 20 + 1))/f$i"; done
for i in 1 2 3 4; do head -c $((BIG_MIB << 20)) /dev/urandom > "$W/tree/big$i"; done
for i in $(seq -w 1 "$N"); do echo "file $i" > "$W/files/f$i"; done
TREE_MIB=$(du -sm "$W/tree" | cut -f1)

# start_pachd NAME ARGS...: a pachd on its own port; sets PACHD_ADDRESS.
PORT=30800
start_pachd() {
  local name=$1; shift
  PORT=$((PORT + 1))
  export PACHD_ADDRESS=127.0.0.1:$PORT PACH_CONFIG=$W/$name.config.json
  "$B/pachd" --data-dir "$W/$name" --address "$PACHD_ADDRESS" --log-level warn "$@" \
    >"$W/$name.out" 2>>"$W/$name.log" &
  PIDS+=($!); CURRENT=$!
  for _ in $(seq 200); do grep -q listening "$W/$name.out" 2>/dev/null && return; sleep 0.05; done
  echo "pachd $name did not start: $(cat "$W/$name.log")" >&2; exit 1
}
stop_pachd() { kill "$CURRENT" 2>/dev/null; wait "$CURRENT" 2>/dev/null || true; }

# put file: embedded, then cluster.
start_pachd put-embedded
"$B/pachctl" create repo tree
t0=$(now); "$B/pachctl" put file tree@master:/ -r -f "$W/tree" >/dev/null; t1=$(now)
PUT_E=$(elapsed "$t0" "$t1"); stop_pachd
start_pachd put-cluster --metadata etcd://127.0.0.1:23791/put --storage "$BUCKET_URL/put"
"$B/pachctl" create repo tree
t0=$(now); "$B/pachctl" put file tree@master:/ -r -f "$W/tree" >/dev/null; t1=$(now)
PUT_C=$(elapsed "$t0" "$t1"); stop_pachd
echo "put file -r ($TREE_MIB MiB, $((FILES + 4)) files): embedded ${PUT_E} s ($(awk -v m="$TREE_MIB" -v t="$PUT_E" 'BEGIN{printf "%.0f", m/t}') MiB/s), $CLUSTER ${PUT_C} s ($(awk -v m="$TREE_MIB" -v t="$PUT_C" 'BEGIN{printf "%.0f", m/t}') MiB/s); cluster/embedded = $(ratio "$PUT_C" "$PUT_E")x"

# run_job PAR: loads the N files, runs the copy pipeline, prints its seconds.
run_job() {
  "$B/pachctl" create repo many
  "$B/pachctl" put file many@master:/ -r -f "$W/files" >/dev/null
  cat > "$W/cp.json" <<JSON
{"pipeline": {"name": "copy"},
 "transform": {"cmd": ["sh", "-c", "cp \"\$many\" /pfs/out/"]},
 "parallelism_spec": {"constant": $1},
 "input": {"pfs": {"repo": "many", "glob": "/*"}}}
JSON
  local t0 t1
  t0=$(now)
  "$B/pachctl" create pipeline -f "$W/cp.json"
  "$B/pachctl" flush commit many@master >/dev/null
  t1=$(now)
  local state
  state=$("$B/pachctl" list job -p copy --raw | jq -r '.state' | head -1)
  [ "$state" = JOB_SUCCESS ] || { echo "job ended $state" >&2; exit 1; }
  elapsed "$t0" "$t1"
}

declare -A EMB CLU
for par in 1 2 4; do
  start_pachd "job-embedded-$par"
  EMB[$par]=$(run_job "$par"); stop_pachd
  start_pachd "job-cluster-$par" --metadata "etcd://127.0.0.1:23791/job$par" \
    --storage "$BUCKET_URL/job$par" --worker-slots 0
  WORKERS=()
  for w in $(seq 1 "$par"); do
    "$B/pachd" worker --slots 1 --data-dir "$W/worker-$par-$w" --log-level warn \
      --metadata "etcd://127.0.0.1:23791/job$par" --storage "$BUCKET_URL/job$par" \
      >"$W/worker-$par-$w.out" 2>>"$W/worker-$par-$w.log" &
    PIDS+=($!); WORKERS+=($!)
  done
  CLU[$par]=$(run_job "$par")
  for p in "${WORKERS[@]}"; do kill "$p"; done
  stop_pachd
  echo "job of $N datums, parallelism $par: embedded ${EMB[$par]} s ($(awk -v n="$N" -v t="${EMB[$par]}" 'BEGIN{printf "%.0f", n/t}') datums/s), $par worker(s) on $CLUSTER ${CLU[$par]} s ($(awk -v n="$N" -v t="${CLU[$par]}" 'BEGIN{printf "%.0f", n/t}') datums/s); cluster/embedded = $(ratio "${CLU[$par]}" "${EMB[$par]}")x; speed-up over 1: embedded $(ratio "${EMB[1]}" "${EMB[$par]}")x, workers $(ratio "${CLU[1]}" "${CLU[$par]}")x"
done

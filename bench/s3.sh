#!/usr/bin/env bash
# The S3 gateway against Garage (a Rust S3 server), side by side in one run,
# both on this machine's disk and driven by the same aws CLI:
#   - `aws s3 cp` of a 1 GiB file in (multipart, 8 MiB parts, 10 at once)
#     and out (ranged GETs, 10 at once), checked byte for byte;
#   - `aws s3 ls` of a prefix holding 100,000 objects (100 pages of 1,000),
#     and the same with --recursive.
# The 100,000 objects are loaded the fastest way each server offers (they
# are not what is measured): `pachctl put file -r` (one commit) for pachd,
# `aws s3 sync` for Garage.
#
#   bench/s3.sh            (builds pachd --release; SIZE_MIB / OBJECTS to scale)
#   AUTH=1 bench/s3.sh     with Pachyderm's auth active, so that the gateway,
#                          like Garage, verifies every request's signature
#                          (the aws CLI signs each body's SHA-256 over HTTP)
#
# Needs Garage (~/.cargo/bin/garage) and the aws CLI venv that
# scripts/test-tools.sh installs. Everything it writes goes under one
# temporary directory that it deletes, and the servers are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
OBJECTS=${OBJECTS:-100000}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
AWS=$HOME/.cache/pach-test-tools/awscli/bin/aws
GARAGE=$HOME/.cargo/bin/garage
[ -x "$GARAGE" ] || GARAGE=$(command -v garage || true)
[ -n "$GARAGE" ] && [ -x "$AWS" ] || { echo "error: garage or the aws CLI is missing; run scripts/test-tools.sh" >&2; exit 1; }

cargo build --release --bin pachd --bin pachctl >&2
PACHD=$TARGET/release/pachd
PACHCTL=$TARGET/release/pachctl

W=$(mktemp -d "${TMPDIR:-/var/tmp}/s3bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 300); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: nothing listens on port $1" >&2; exit 1
}
now() { python3 -c 'import time; print(time.monotonic())'; }
# Seconds taken by a command (its output discarded).
timed() { local s; s=$(now); "$@" >/dev/null; python3 -c "print(f'{$(now) - $s:.2f}')"; }

# Garage, single node, one bucket.
G_RPC=$(free_port); G_S3=$(free_port); G_ADMIN=$(free_port)
G_KEY=GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')
G_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
mkdir -p "$W/garage"
cat >"$W/garage/garage.toml" <<EOF
metadata_dir = "$W/garage/meta"
data_dir = "$W/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$G_RPC"
rpc_public_addr = "127.0.0.1:$G_RPC"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$G_S3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$G_ADMIN"
admin_token = "$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
EOF
GARAGE_DEFAULT_ACCESS_KEY=$G_KEY GARAGE_DEFAULT_SECRET_KEY=$G_SECRET GARAGE_DEFAULT_BUCKET=bkt \
  "$GARAGE" -c "$W/garage/garage.toml" server --single-node --default-bucket >"$W/garage.log" 2>&1 &
PIDS+=($!)

# pachd with its S3 gateway, embedded metadata and objects on the same disk.
P_API=$(free_port); P_S3=$(free_port)
"$PACHD" --data-dir "$W/pachd" --address "127.0.0.1:$P_API" --s3gateway-address "127.0.0.1:$P_S3" \
  --worker-slots 0 >"$W/pachd.out" 2>"$W/pachd.log" &
PACHD_PID=$!
PIDS+=($PACHD_PID)
wait_port "$G_S3"; wait_port "$P_S3"; sleep 1

pachctl() { PACHD_ADDRESS=127.0.0.1:$P_API PACH_CONFIG=$W/pachctl.json "$PACHCTL" "$@"; }
# Without auth the gateway takes any credentials; with it, the access key
# and the secret are both a pachd token (pachctl keeps the admin's).
P_KEY=any AUTH_STATE="no auth: the gateway checks no signature"
if [ "${AUTH:-0}" = 1 ]; then
  pachctl enterprise activate any-code-activates >/dev/null
  P_KEY=$(pachctl auth activate --initial-admin robot:bench | tail -n 1)
  AUTH_STATE="auth active: the gateway verifies every signature"
fi
aws_g() { AWS_ACCESS_KEY_ID=$G_KEY AWS_SECRET_ACCESS_KEY=$G_SECRET AWS_DEFAULT_REGION=garage \
  AWS_CONFIG_FILE=/dev/null "$AWS" --endpoint-url "http://127.0.0.1:$G_S3" "$@"; }
aws_p() { AWS_ACCESS_KEY_ID=$P_KEY AWS_SECRET_ACCESS_KEY=$P_KEY AWS_DEFAULT_REGION=us-east-1 \
  AWS_CONFIG_FILE=/dev/null "$AWS" --endpoint-url "http://127.0.0.1:$P_S3" "$@"; }
aws_p s3 mb s3://master.bench >/dev/null

echo "writing a ${SIZE_MIB} MiB file of random bytes..." >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$W/big"
cp_in_g=$(timed aws_g s3 cp --only-show-errors "$W/big" s3://bkt/big)
cp_in_p=$(timed aws_p s3 cp --only-show-errors "$W/big" s3://master.bench/big)
cp_out_g=$(timed aws_g s3 cp --only-show-errors s3://bkt/big "$W/back")
cmp -s "$W/big" "$W/back" || { echo "error: Garage returned other bytes" >&2; exit 1; }
rm -f "$W/back"
cp_out_p=$(timed aws_p s3 cp --only-show-errors s3://master.bench/big "$W/back")
cmp -s "$W/big" "$W/back" || { echo "error: the gateway returned other bytes" >&2; exit 1; }
rm -f "$W/big" "$W/back"
rss_mib=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$PACHD_PID/status")

echo "loading $OBJECTS objects under list/ ..." >&2
python3 - "$W/many" "$OBJECTS" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root)
for i in range(n):
    with open(os.path.join(root, f"obj{i:06d}"), "w") as f:
        f.write(f"object {i}\n")
PY
load_p=$(timed pachctl put file -r bench@master:/list -f "$W/many")
load_g=$(timed aws_g s3 sync --only-show-errors "$W/many" s3://bkt/list/)
rm -rf "$W/many"
count() { "$@" | wc -l; }
n_p=$(count aws_p s3 ls s3://master.bench/list/)
n_g=$(count aws_g s3 ls s3://bkt/list/)
[ "$n_p" -eq "$OBJECTS" ] && [ "$n_g" -eq "$OBJECTS" ] || { echo "error: listed $n_p (gateway) and $n_g (Garage) of $OBJECTS" >&2; exit 1; }
ls_g=$(timed aws_g s3 ls s3://bkt/list/)
ls_p=$(timed aws_p s3 ls s3://master.bench/list/)
lsr_g=$(timed aws_g s3 ls --recursive s3://bkt/list/)
lsr_p=$(timed aws_p s3 ls --recursive s3://master.bench/list/)

ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
cat <<EOF

S3 gateway vs Garage ($(nproc) cores, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB RAM), aws CLI $("$AWS" --version 2>&1 | cut -d' ' -f1); $AUTH_STATE
operation                                   gateway     Garage   Garage/gateway
aws s3 cp in, ${SIZE_MIB} MiB                       ${cp_in_p}s     ${cp_in_g}s    $(ratio "$cp_in_g" "$cp_in_p")
aws s3 cp out, ${SIZE_MIB} MiB                      ${cp_out_p}s     ${cp_out_g}s    $(ratio "$cp_out_g" "$cp_out_p")
aws s3 ls prefix, $OBJECTS objects             ${ls_p}s     ${ls_g}s    $(ratio "$ls_g" "$ls_p")
aws s3 ls --recursive, $OBJECTS objects        ${lsr_p}s     ${lsr_g}s    $(ratio "$lsr_g" "$lsr_p")
loading the objects (not compared)          ${load_p}s (pachctl put file -r)   ${load_g}s (aws s3 sync)
pachd peak RSS through the copies: ${rss_mib} MiB
EOF

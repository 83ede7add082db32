#!/usr/bin/env bash
# One large file put and got through python-pachyderm 3.1.0 (Pachyderm's own
# Python client, on pachd's Pachyderm 1.9 API) and through pachctl, next to
# `cp` of the same file on the same disk, side by side in this same run.
# Usage: bench/clients.sh [GIB]   (default 1)
#   Each of cp, pachctl put, python put, pachctl get, python get runs RUNS
#   times (default 3), alternating, the page cache dropped before each timed
#   run when this runs as root (`sync; echo 3 > /proc/sys/vm/drop_caches`),
#   every put into a fresh pachd data directory; medians are reported, and
#   every copy is checked against the source (cmp).
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-clients), RUNS,
#      PYPACH_VENV (python-pachyderm's virtualenv, as the peer suite's run.sh:
#      default ~/.cache/python-pachyderm-3.1.0, created when missing),
#      CARGO_TARGET_DIR (where the release binaries are built, as for cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
GIB=${1:-1}
RUNS=${RUNS:-3}
W=${BENCH_DIR:-/tmp/pach-bench-clients}

scripts/prereqs.sh
cargo build --release -q -p pachd -p pachctl -p pach-bench
B=${CARGO_TARGET_DIR:-$(pwd)/target}/release
. bench/lib.sh
pypach_install
rm -rf "$W"; mkdir -p "$W"
PORT=$((30000 + RANDOM % 2000))
export PACHD_ADDRESS=127.0.0.1:$PORT PACH_CONFIG=$W/config.json
PACHD_PID=""
start_pachd() {
  "$B/pachd" --data-dir "$W/data" --address "$PACHD_ADDRESS" --log-level warn >"$W/pachd.out" 2>>"$W/pachd.log" &
  PACHD_PID=$!
  for _ in $(seq 100); do grep -q listening "$W/pachd.out" 2>/dev/null && return; sleep 0.1; done
  echo "pachd did not start; see $W/pachd.log" >&2; exit 1
}
stop_pachd() { [ -n "$PACHD_PID" ] && kill "$PACHD_PID" && wait "$PACHD_PID" || true; PACHD_PID=""; }
fresh_pachd() { stop_pachd; rm -rf "$W/data"; start_pachd; "$B/pachctl" create repo big; }
trap stop_pachd EXIT

# python-pachyderm's own calls: put_file_bytes with a file object (sent in
# the client's own chunks) and get_file (an iterator of the pieces).
cat >"$W/client.py" <<'PY'
import os, sys, time
import pypach_compat  # noqa: F401
import python_pachyderm
op, path = sys.argv[1], sys.argv[2]
host, port = sys.argv[3].rsplit(":", 1)
c = python_pachyderm.Client(host=host, port=int(port))
t0 = time.time()
if op == "put":
    with open(path, "rb") as f:
        c.put_file_bytes(("big", "master"), "/big", f)
else:
    with open(path, "wb") as f:
        for part in c.get_file(("big", "master"), "/big"):
            f.write(part)
os.sync()
print(f"{time.time() - t0:.3f}")
PY
# The Python client's figures are timed by the script itself, from just
# before the call to the end of a sync as for the others: they leave out
# the interpreter's start and the import of the client (0.2-0.3 s here).
py_timed() { # ARRAY OP PATH
  local -n into=$1
  drop_caches
  into+=("$(pypach "$W/client.py" "$2" "$3" "$PACHD_ADDRESS")")
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr), disk of $W: $(df -h "$W" | awk 'NR==2{print $1}')"
"$B/gen-bytes" "${GIB}G" 11 >"$W/src"
CP=(); PC_PUT=(); PY_PUT=(); PC_GET=(); PY_GET=()
timed() { # ARRAY COMMAND...
  local -n out=$1; shift
  drop_caches
  local t0 t1; t0=$(now); "$@"; sync; t1=$(now)
  out+=("$(elapsed "$t0" "$t1")")
}
for _ in $(seq "$RUNS"); do
  timed CP cp "$W/src" "$W/copy"
  cmp "$W/src" "$W/copy"; rm -f "$W/copy"

  fresh_pachd
  timed PC_PUT "$B/pachctl" put file big@master:/big -f "$W/src"
  timed PC_GET "$B/pachctl" get file big@master:/big -o "$W/copy"
  cmp "$W/src" "$W/copy"; rm -f "$W/copy"

  fresh_pachd
  py_timed PY_PUT put "$W/src"
  py_timed PY_GET get "$W/copy"
  cmp "$W/src" "$W/copy"; rm -f "$W/copy"
done
stop_pachd
CPM=$(median "${CP[@]}")
row() { # NAME ARRAY
  local -n runs=$2
  local m; m=$(median "${runs[@]}")
  printf '%-24s %8s %10s %8s   %s\n' "$1" "$m" "$(awk -v g="$GIB" -v t="$m" 'BEGIN{printf "%.0f", g*1024/t}')" "$(ratio "$m" "$CPM")" "${runs[*]}"
}
echo "$GIB GiB file, median of $RUNS alternating runs (page cache dropped before each: $DROPPED)"
printf '%-24s %8s %10s %8s   %s\n' "operation" "seconds" "MiB/s" "vs cp" "runs"
row "cp" CP
row "pachctl put file" PC_PUT
row "python put_file_bytes" PY_PUT
row "pachctl get file" PC_GET
row "python get_file" PY_GET
PYP=$(median "${PY_PUT[@]}"); PCP=$(median "${PC_PUT[@]}")
PYG=$(median "${PY_GET[@]}"); PCG=$(median "${PC_GET[@]}")
echo "python/pachctl: put $(ratio "$PYP" "$PCP")x, get $(ratio "$PYG" "$PCG")x (goal <= 1.0x: python at least as fast)"
rm -rf "$W"

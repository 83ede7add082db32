#!/usr/bin/env bash
# A spout's commit rate: user code (Python's tarfile, as Pachyderm's
# examples/spouts write it) sends N small messages (~100 bytes) to /pfs/out,
#   one message per archive: each message is one commit of the output branch;
#   B messages per archive: one commit per B messages;
# measured from the first commit's finish to the last one's (startup left
# out), against the baseline of the same user code writing the same archives
# into a plain pipe read by `cat >/dev/null`, which is what producing them
# costs. Goal: 1,000 small messages/s or more.
# Usage: bench/spout.sh [--quick]
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-spout), BENCH_MESSAGES
#      (default 5000), BENCH_BATCH (B, default 100), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${BENCH_MESSAGES:-5000}; [ "${1:-}" = "--quick" ] && N=500
BATCH=${BENCH_BATCH:-100}
W=${BENCH_DIR:-/tmp/pach-bench-spout}

scripts/prereqs.sh
cargo build --release -q -p pachd -p pachctl
T=${CARGO_TARGET_DIR:-target}
case "$T" in /*) ;; *) T=$(pwd)/$T ;; esac
B=$T/release
rm -rf "$W"; mkdir -p "$W"
PORT=$((30000 + RANDOM % 2000))
export PACHD_ADDRESS=127.0.0.1:$PORT PACH_CONFIG=$W/config.json
"$B/pachd" --data-dir "$W/data" --address "$PACHD_ADDRESS" --log-level warn >"$W/pachd.out" 2>>"$W/pachd.log" &
PACHD_PID=$!
trap 'kill $PACHD_PID 2>/dev/null; wait $PACHD_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$W/pachd.out" 2>/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr); $N messages"

# The user code: N messages, PER_ARCHIVE to an archive, then it idles.
cat > "$W/spout.py" <<'PY'
import io, sys, tarfile, time
n, per, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = b"x" * 100
sent = 0
while sent < n:
    with open(out, "wb") as pipe:
        with tarfile.open(fileobj=pipe, mode="w|") as tar:
            for _ in range(min(per, n - sent)):
                info = tarfile.TarInfo(name="messages/%08d" % sent)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
                sent += 1
if len(sys.argv) > 4:
    time.sleep(1e9)
PY

# Baseline: the same archives into a named pipe that `cat` drains.
baseline() {
  local per=$1 fifo=$W/baseline.fifo
  rm -f "$fifo"; mkfifo "$fifo"
  # Opened read-write, the pipe never ends for cat: no writer meets a
  # closing reader.
  cat 0<>"$fifo" >/dev/null &
  local reader=$!
  local t0 t1
  t0=$(now); python3 "$W/spout.py" "$N" "$per" "$fifo"; t1=$(now)
  kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null || true
  elapsed "$t0" "$t1"
}

# The spout; prints the seconds from its first commit's finish to its last's.
spout() {
  local per=$1 name=$2
  # Inline: the sandbox's /tmp is its own.
  jq -n --arg name "$name" --arg code "$(cat "$W/spout.py")" --arg n "$N" --arg per "$per" \
    '{pipeline: {name: $name}, spout: {},
      transform: {cmd: ["python3", "-c", $code, $n, $per, "/pfs/out", "idle"]}}' >"$W/$name.json"
  "$B/pachctl" create pipeline -f "$W/$name.json" 2>/dev/null
  # Done when the head holds every message (100 bytes each): one small call
  # per poll, so that watching costs the spout next to nothing.
  for _ in $(seq 1200); do
    local held
    held=$("$B/pachctl" inspect commit "$name@master" --raw 2>/dev/null | jq -r '.sizeBytes // "0" | tonumber' || true)
    [ "${held:-0}" -ge $((N * 100)) ] && break
    sleep 0.5
  done
  "$B/pachctl" stop pipeline "$name"
  local files
  files=$("$B/pachctl" list file "$name@master:/messages" --raw | jq -s length)
  [ "$files" = "$N" ] || { echo "spout $name: $files of $N messages committed" >&2; exit 1; }
  "$B/pachctl" list commit "$name" --raw | jq -r '.finished' |
    python3 -c '
import sys, datetime
ts = sorted(datetime.datetime.fromisoformat(l.strip().replace("Z", "+00:00")[:26] + "+00:00").timestamp() for l in sys.stdin if l.strip())
print("%.3f" % (ts[-1] - ts[0]))'
}

for per in 1 "$BATCH"; do
  BASE=$(baseline "$per")
  SPAN=$(spout "$per" "spout$per")
  commits=$(( (N + per - 1) / per ))
  rate=$(awk -v n="$N" -v s="$SPAN" -v c="$commits" 'BEGIN{printf "%.0f", n*(c-1)/c/s}')
  crate=$(awk -v s="$SPAN" -v c="$commits" 'BEGIN{printf "%.0f", (c-1)/s}')
  brate=$(awk -v n="$N" -v s="$BASE" 'BEGIN{printf "%.0f", n/s}')
  echo "$per message(s) per archive: spout $rate messages/s ($crate commits/s over ${SPAN} s); baseline (same archives into a pipe) $brate messages/s; spout/baseline $(awk -v a="$rate" -v b="$brate" 'BEGIN{printf "%.2f", a/b}'); goal >= 1000 messages/s"
done

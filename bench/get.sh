#!/usr/bin/env bash
# `get file -r` of many small files against `cp -r` of the same tree on the
# same disk, run side by side in this same run. Usage: bench/get.sh [FILES]
#   FILES (default 20000) files of 100-1,100 bytes in directories of 200,
#   put into a repo with one `put file -r`; then the directory is read back
#   with `get file -r` (goal: within 2x of `cp -r`), and the copy is checked
#   byte for byte against the source (`diff -r`). RUNS (default 5) alternating
#   runs of each, the page cache dropped before each when run as root
#   (BENCH_DROP_CACHES=0: kept, so both read from memory); medians are compared.
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-get), BENCH_BIN (a
#      directory holding pachd and pachctl: skips the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-20000}
W=${BENCH_DIR:-/tmp/pach-bench-get}
. bench/lib.sh
release_bins
rm -rf "$W"; mkdir -p "$W/src"
PORT=$((30000 + RANDOM % 2000))
"$B/pachd" --data-dir "$W/data" --address "127.0.0.1:$PORT" --log-level warn >"$W/pachd.out" 2>"$W/pachd.log" &
PACHD=$!
trap 'kill $PACHD 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$W/pachd.out" 2>/dev/null && break; sleep 0.1; done
pc() { PACHD_ADDRESS=127.0.0.1:$PORT PACH_CONFIG=$W/config.json "$B/pachctl" "$@"; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"

# The tree: FILES files, 200 per directory, sizes 100-1,100 bytes.
python3 - "$W/src" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
for i in range(n):
    d = os.path.join(root, f"d{i // 200:04d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.txt"), "wb") as f:
        f.write(rnd.randbytes(100 + rnd.randrange(1000)))
PY
pc create repo small
pc put file -r "small@master:/" -f "$W/src" >/dev/null

# RUNS alternating runs of each, the page cache dropped before every timed
# run when this runs as root (the disk is noisy); medians are compared.
CPS=(); GETS=()
for _ in $(seq "${RUNS:-5}"); do
  rm -rf "$W/cp" "$W/get"
  drop_caches; t0=$(now); cp -r "$W/src" "$W/cp"; sync; t1=$(now)
  CPS+=("$(elapsed "$t0" "$t1")")
  drop_caches; t0=$(now); pc get file -r "small@master:/" -o "$W/get" >/dev/null; sync; t1=$(now)
  GETS+=("$(elapsed "$t0" "$t1")")
  diff -r "$W/src" "$W/get" >/dev/null || { echo "get file -r did not reproduce the tree" >&2; exit 1; }
done
CP=$(median "${CPS[@]}"); GET=$(median "${GETS[@]}")
echo "medians of ${#CPS[@]} alternating runs (page cache dropped before each: $DROPPED)"
printf '%-32s %10s %10s %8s   %s\n' "operation ($FILES files)" "seconds" "files/s" "vs cp -r" "runs"
printf '%-32s %10s %10.0f %8s   %s\n' "cp -r" "$CP" "$(awk -v n="$FILES" -v t="$CP" 'BEGIN{print n/t}')" "1.00" "${CPS[*]}"
printf '%-32s %10s %10.0f %8s   %s\n' "pachctl get file -r" "$GET" "$(awk -v n="$FILES" -v t="$GET" 'BEGIN{print n/t}')" "$(ratio "$GET" "$CP")" "${GETS[*]}"
rm -rf "$W"

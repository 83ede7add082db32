#!/usr/bin/env bash
# One large file read through `pachctl mount` (FUSE) against `pachctl get
# file` of the same file, run side by side in this same run; then the same
# file written through a writable mount (`cp` into it, put at close and
# committed at unmount) against `pachctl put file`. Usage: bench/mount.sh [MIB]
#   MIB (default 300) MiB of random bytes. RUNS (default 5) alternating runs
#   of each, the page cache dropped before each when run as root; every read
#   is from a fresh mount (a mount keeps a finished commit's pages between
#   opens) and is checked with cmp; medians are compared.
# Needs root (mount(2)) and /dev/fuse.
# Env: BENCH_DIR (scratch, default /tmp/pach-bench-mount), BENCH_BIN (a
#      directory holding pachd and pachctl: skips the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-300}
W=${BENCH_DIR:-/tmp/pach-bench-mount}
. bench/lib.sh
release_bins
[ -e /dev/fuse ] || { echo "bench/mount.sh: /dev/fuse is absent" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W/mnt"
PORT=$((30000 + RANDOM % 2000))
"$B/pachd" --data-dir "$W/data" --address "127.0.0.1:$PORT" --log-level warn >"$W/pachd.out" 2>"$W/pachd.log" &
PACHD=$!
MOUNT=
cleanup() {
  if [ -n "$MOUNT" ]; then pc unmount "$W/mnt" 2>/dev/null || umount -l "$W/mnt" 2>/dev/null || true; fi
  kill $PACHD 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q listening "$W/pachd.out" 2>/dev/null && break; sleep 0.1; done
pc() { PACHD_ADDRESS=127.0.0.1:$PORT PACH_CONFIG=$W/config.json "$B/pachctl" "$@"; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"

# `pachctl mount [ARGS]` in the background, until the mount is there.
mount_pfs() {
  pc mount "$W/mnt" "$@" 2>>"$W/mount.log" &
  MOUNT=$!
  for _ in $(seq 200); do grep -q " $W/mnt .* pfs://" /proc/self/mountinfo && return; sleep 0.05; done
  echo "no mount: $(cat "$W/mount.log")" >&2; exit 1
}
unmount_pfs() { pc unmount "$W/mnt"; wait "$MOUNT"; MOUNT=; }

head -c $((MIB << 20)) /dev/urandom >"$W/big"
pc create repo bench
pc put file bench@master:/big -f "$W/big"

GETS=(); CATS=(); PUTS=(); CPS=()
for i in $(seq "${RUNS:-5}"); do
  drop_caches; t0=$(now); pc get file bench@master:/big >"$W/got"; t1=$(now)
  GETS+=("$(elapsed "$t0" "$t1")")
  cmp -s "$W/big" "$W/got" || { echo "get file differs" >&2; exit 1; }
  mount_pfs
  drop_caches; t0=$(now); cat "$W/mnt/bench/big" >"$W/got"; t1=$(now)
  CATS+=("$(elapsed "$t0" "$t1")")
  unmount_pfs
  cmp -s "$W/big" "$W/got" || { echo "the mount's bytes differ" >&2; exit 1; }

  drop_caches; t0=$(now); pc put file -o "bench@master:/put$i" -f "$W/big"; t1=$(now)
  PUTS+=("$(elapsed "$t0" "$t1")")
  mount_pfs -w
  drop_caches; t0=$(now); cp "$W/big" "$W/mnt/bench/cp$i"; unmount_pfs; t1=$(now)
  CPS+=("$(elapsed "$t0" "$t1")")
  pc get file "bench@master:/cp$i" | cmp -s "$W/big" - || { echo "the written file differs" >&2; exit 1; }
done
GET=$(median "${GETS[@]}"); CAT=$(median "${CATS[@]}")
PUT=$(median "${PUTS[@]}"); CP=$(median "${CPS[@]}")
echo "medians of ${#GETS[@]} alternating runs (page cache dropped before each: $DROPPED)"
printf '%-44s %9s %9s %8s   %s\n' "operation ($MIB MiB)" "seconds" "MiB/s" "ratio" "runs"
row() { printf '%-44s %9s %9.0f %8s   %s\n' "$1" "$2" "$(awk -v m="$MIB" -v t="$2" 'BEGIN{print m/t}')" "$3" "$4"; }
row "pachctl get file" "$GET" "1.00" "${GETS[*]}"
row "cat through pachctl mount" "$CAT" "$(ratio "$CAT" "$GET")" "${CATS[*]}"
row "pachctl put file" "$PUT" "1.00" "${PUTS[*]}"
row "cp into pachctl mount -w, then unmount" "$CP" "$(ratio "$CP" "$PUT")" "${CPS[*]}"
rm -rf "$W"

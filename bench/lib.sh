# Shared by the bench scripts (sourced): timing, medians, the page cache, and
# python-pachyderm 3.1.0's virtualenv.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
# Drops the page cache (as root; BENCH_DROP_CACHES=0 keeps it) so that timed
# runs on a noisy disk start alike; DROPPED says whether it could.
DROPPED=no
drop_caches() {
  sync
  if [ "${BENCH_DROP_CACHES:-1}" = 1 ] && [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 >/proc/sys/vm/drop_caches
    DROPPED=yes
  fi
}
# python-pachyderm 3.1.0 in the virtualenv the peer suite's run.sh uses
# ($PYPACH_VENV), installed as it installs it when missing. Scripts run it
# with `pypach script.py ...`, which first makes the client importable on
# Python 3.11+ (bench/pypach_compat.py).
PYPACH_VENV=${PYPACH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/python-pachyderm-3.1.0}
pypach_install() {
  if ! "$PYPACH_VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("python_pachyderm") is None)' 2>/dev/null; then
    python3 -m venv "$PYPACH_VENV"
    "$PYPACH_VENV/bin/pip" install --quiet python-pachyderm==3.1.0 'protobuf<3.21' certifi 'pytest<9' pytest-timeout
  fi
}
pypach() { PYTHONPATH="$BENCH_LIB_DIR" "$PYPACH_VENV/bin/python" "$@"; }
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# report_pair A B "A's name" "B's name" "ratio's name": the medians of the
# put, get and call timings in T[A,op] and T[B,op] (the caller's associative
# array of space-separated runs, MIB the size moved; `load`, calls made by
# CLIENTS clients at once, when measured) side by side, B over A, then every
# run.
report_pair() {
  local a=$1 b=$2 op x y name
  printf '%-32s %12s %12s %8s\n' "operation" "$3" "$4" "$5"
  for op in put get call load; do
    [ -n "${T[$a,$op]:-}" ] || continue
    # shellcheck disable=SC2086
    x=$(median ${T[$a,$op]}); y=$(median ${T[$b,$op]})
    case $op in
      put) name="put file $MIB MiB (s)" ;;
      get) name="get file $MIB MiB (s)" ;;
      call) name="InspectRepo, mean (us)" ;;
      load) name="InspectRepo, $CLIENTS at once (us)" ;;
    esac
    printf '%-32s %12s %12s %8s\n' "$name" "$x" "$y" "$(ratio "$y" "$x")"
  done
  printf 'runs: %s' "$3"
  for op in put get call load; do [ -z "${T[$a,$op]:-}" ] || printf ' %s %s/' "$op" "${T[$a,$op]}"; done
  printf '; %s' "$4"
  for op in put get call load; do [ -z "${T[$b,$op]:-}" ] || printf ' %s %s/' "$op" "${T[$b,$op]}"; done
  echo
}

# measure_pair A PORT_A B PORT_B: RUNS alternating runs of put file and get
# file of $W/src through `pc A|B ...` (the caller's pachctl wrapper; each
# copy checked), then small calls from one client process to both
# (bench/paired_calls.py) and from CLIENTS such processes at once; into the
# caller's associative array T, as report_pair reads it.
measure_pair() {
  local a=$1 port_a=$2 b=$3 port_b=$4 run s t0 t1 x y at c
  for run in $(seq "$RUNS"); do
    for s in "$a" "$b"; do
      t0=$(now); pc "$s" put file "big@master:/f$run" -o -f "$W/src"; t1=$(now)
      T[$s,put]+="$(elapsed "$t0" "$t1") "
      t0=$(now); pc "$s" get file "big@master:/f$run" >"$W/out"; t1=$(now)
      T[$s,get]+="$(elapsed "$t0" "$t1") "
      cmp -s "$W/src" "$W/out" || { echo "get file ($s) returned other bytes" >&2; exit 1; }
    done
    read -r x y < <(pypach "$BENCH_LIB_DIR/paired_calls.py" "$port_a" "$port_b" "$N" "$BATCH")
    T[$a,call]+="$x "; T[$b,call]+="$y "
    # CLIENTS such clients at once, timed from one start time after they connect.
    at=$(awk -v t="$(now)" 'BEGIN{printf "%.3f", t + 3}')
    local clients=()
    for c in $(seq "$CLIENTS"); do
      pypach "$BENCH_LIB_DIR/paired_calls.py" "$port_a" "$port_b" "$N" "$BATCH" "$at" >"$W/load.$c" &
      clients+=($!)
    done
    wait "${clients[@]}"
    T[$a,load]+="$(cat "$W"/load.* | awk '{s+=$1} END{printf "%.0f", s/NR}') "
    T[$b,load]+="$(cat "$W"/load.* | awk '{s+=$2} END{printf "%.0f", s/NR}') "
  done
}

# release_bins: sets B, the directory holding pachd and pachctl: BENCH_BIN
# when given, else this checkout's release build (built here).
release_bins() {
  if [ -n "${BENCH_BIN:-}" ]; then
    B=$BENCH_BIN
  else
    scripts/prereqs.sh
    cargo build --release -q -p pachd -p pachctl
    B=${CARGO_TARGET_DIR:-$(pwd)/target}/release
  fi
}

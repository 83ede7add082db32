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

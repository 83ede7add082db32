#!/usr/bin/env bash
# Runs python-pachyderm 3.1.0's own test suite (the Python client released
# for Pachyderm 1.9) against a fresh pachd on the embedded default, as the
# judge of pachd's Pachyderm 1.9 API. The suite is not ours and is never
# edited: it lives in the peer-suites directory beside the project
# ($PEER_SUITES, default ../shared/peer-suites).
#
# The client always dials localhost:30650, so that port must be free. With
# PYSUITE_NETNS=1 (root) pachd and the suite run in a network namespace of
# their own instead, where the port is always free but nothing beyond
# loopback is reachable (test_create_python_pipeline then cannot fetch its
# wheel from PyPI).
#
# Deselected, with the reason:
#   test_put_file_url                    fetches a page from the internet (a local
#                                        HTTP server covers put file from a URL in
#                                        tests/pfs_cli.rs)
# test_auth.py and test_enterprise.py run only with PACH_PYTHON_ENTERPRISE_CODE
# set: any code activates here (nothing is paid), so it is set to one unless
# given.
# With PYSUITE_AS_ADMIN=1 the suite runs once more against a cluster with
# auth active, every call carrying the admin's token (PACH_PYTHON_AUTH_TOKEN);
# test_auth.py and test_enterprise.py, which activate auth themselves, are
# skipped then.
# Extra arguments go to pytest (e.g. tests/test_pfs.py -k inspect).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE=""
for d in "${PEER_SUITES:-}" "$ROOT/../shared/peer-suites" "$ROOT/../../shared/peer-suites"; do
  if [ -n "$d" ] && [ -x "$d/python-pachyderm-3.1.0/run.sh" ]; then
    SUITE=$(cd "$d/python-pachyderm-3.1.0" && pwd)
    break
  fi
done
if [ -z "$SUITE" ]; then
  echo "python-pachyderm's suite is not in ../shared/peer-suites beside the checkout; set PEER_SUITES to the folder holding python-pachyderm-3.1.0" >&2
  exit 1
fi
# PYSUITE_PACHD: the pachd to judge (default: the debug build; the release
# build that scripts/run.sh runs is target/release/pachd).
PACHD=${PYSUITE_PACHD:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/pachd}
[ -x "$PACHD" ] || { echo "build pachd first (cargo build --bins), or set PYSUITE_PACHD" >&2; exit 1; }

if [ $# -eq 0 ]; then
  # test_admin.py last: it leaves a pipeline behind, which test_pfs's
  # test_delete_all_repos would trip over.
  set -- tests/test_client.py tests/test_version.py tests/health.py tests/test_enterprise.py \
    tests/test_auth.py tests/test_pfs.py \
    tests/test_pps.py tests/test_transaction.py tests/test_debug.py tests/test_util.py \
    tests/test_admin.py -k "not test_put_file_url"
fi

if [ "${PYSUITE_AS_ADMIN:-0}" = 1 ]; then
  unset PACH_PYTHON_ENTERPRISE_CODE
else
  export PACH_PYTHON_ENTERPRISE_CODE=${PACH_PYTHON_ENTERPRISE_CODE:-any-code-activates}
fi
PACHCTL=$(dirname "$PACHD")/pachctl
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
# pachd's datums may need the internet: the suite's create_python_pipeline
# builds wheels with `pip wheel` from PyPI inside a pipeline.
run() {
  "$PACHD" --data-dir "$DATA/pachd" --datum-network outbound >"$DATA/pachd.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    grep -q "pachd listening" "$DATA/pachd.log" && break
    sleep 0.1
  done
  local rc=0
  if [ "${PYSUITE_AS_ADMIN:-0}" = 1 ]; then
    [ -x "$PACHCTL" ] || { echo "PYSUITE_AS_ADMIN needs pachctl beside pachd ($PACHCTL)" >&2; return 1; }
    local pc=(env PACH_CONFIG="$DATA/config.json" PACHD_ADDRESS=localhost:30650 "$PACHCTL")
    "${pc[@]}" enterprise activate any-code-activates >/dev/null || return 1
    PACH_PYTHON_AUTH_TOKEN=$("${pc[@]}" auth activate --initial-admin robot:root) || return 1
    PACH_PYTHON_AUTH_TOKEN=$(printf '%s\n' "$PACH_PYTHON_AUTH_TOKEN" | tail -n 1)
    export PACH_PYTHON_AUTH_TOKEN
    "${pc[@]}" auth whoami | grep -q "robot:root" || return 1
    echo "auth active: the suite runs as robot:root"
  fi
  "$SUITE/run.sh" "$@" || rc=$?
  kill "$pid"
  wait "$pid" || true
  if [ $rc -ne 0 ]; then
    echo "--- pachd's log (last 50 lines) ---" >&2
    tail -n 50 "$DATA/pachd.log" >&2
  fi
  return $rc
}
export -f run
export PACHD PACHCTL DATA SUITE
if [ "${PYSUITE_NETNS:-0}" = 1 ]; then
  unshare -n bash -c 'ip link set lo up && run "$@"' run "$@"
elif (exec 3<>/dev/tcp/127.0.0.1/30650) 2>/dev/null; then
  echo "localhost:30650 is taken (another pachd?): stop it, or set PYSUITE_NETNS=1" >&2
  exit 1
else
  run "$@"
fi

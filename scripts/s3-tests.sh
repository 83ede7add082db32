#!/usr/bin/env bash
# Runs ceph's s3-tests (the S3 conformance suite Pachyderm 1.9 also ran)
# against the S3 gateway of a fresh pachd on loopback, and fails if any test
# listed in tests/s3-tests-pass.txt fails. The list holds the suite's tests
# of the operations the gateway implements that pass; docs/s3gateway.md says
# why the others are left out.
#
#   scripts/s3-tests.sh          run the listed tests (what CI runs)
#   scripts/s3-tests.sh --all    run every test of test_s3.py and
#                                test_headers.py, and write each one's
#                                outcome to s3-tests-results.txt (to review
#                                the list)
#   S3_TESTS_LIST=FILE scripts/s3-tests.sh
#                                run (and require) the tests listed in FILE
#                                instead, e.g. one family being worked on
#   S3_TESTS_SECURE=1 scripts/s3-tests.sh [--all]
#                                as a cluster that others reach is run:
#                                Pachyderm's auth active and pachd serving
#                                TLS. The suite's main user is the cluster
#                                admin and its alt and tenant users robots
#                                without any access, each signing with its
#                                pachd token (as access key and secret); the
#                                certificate is a throwaway CA's
#                                (scripts/loopback-ca.sh; the suite encrypts
#                                but does not verify: it trusts certifi's
#                                roots only). The list is then
#                                tests/s3-tests-secure-pass.txt
#
# The suite comes from shared/peer-suites/s3-tests beside the checkout
# (S3_TESTS_SUITE overrides), copied out first since that folder is read-only; its Python
# requirements go into a venv of their own (scripts/test-tools.sh). pachd is
# the one of $CARGO_TARGET_DIR (or target/) debug build: `cargo build --bins`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SUITE=${S3_TESTS_SUITE:-}
if [ -z "$SUITE" ]; then
  for d in "$ROOT/../shared" "$ROOT/../../shared"; do
    [ -d "$d/peer-suites/s3-tests" ] && SUITE="$d/peer-suites/s3-tests" && break
  done
fi
VENV=$HOME/.cache/pach-test-tools/s3-tests
PACHD=${CARGO_TARGET_DIR:-$ROOT/target}/debug/pachd
SECURE=${S3_TESTS_SECURE:-0}
if [ "$SECURE" = 1 ]; then
  LIST=${S3_TESTS_LIST:-$ROOT/tests/s3-tests-secure-pass.txt}
else
  LIST=${S3_TESTS_LIST:-$ROOT/tests/s3-tests-pass.txt}
fi
MODE=${1:-listed}

[ -n "$SUITE" ] && [ -d "$SUITE" ] || { echo "error: the s3-tests suite is not in ../shared/peer-suites/s3-tests; set S3_TESTS_SUITE to its folder" >&2; exit 1; }
[ "$MODE" = "--all" ] || [ -s "$LIST" ] || { echo "error: $LIST is missing" >&2; exit 1; }
[ -x "$PACHD" ] || { echo "error: $PACHD is missing; run \`cargo build --bins\` first" >&2; exit 1; }
PACHCTL=$(dirname "$PACHD")/pachctl
[ "$SECURE" != 1 ] || [ -x "$PACHCTL" ] || { echo "error: $PACHCTL is missing; run \`cargo build --bins\` first" >&2; exit 1; }
[ -x "$VENV/bin/pytest" ] || scripts/test-tools.sh

WORK=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API=$(free_port)
S3=$(free_port)
cp -r "$SUITE" "$WORK/s3-tests"
TLS_ARGS=() SCHEME=grpc HTTPS=False CAS=
if [ "$SECURE" = 1 ]; then
  scripts/loopback-ca.sh "$WORK/tls"
  TLS_ARGS=(--tls-cert "$WORK/tls/tls.crt" --tls-key "$WORK/tls/tls.key") SCHEME=grpcs HTTPS=True CAS=$WORK/tls/ca.pem
fi
"$PACHD" --data-dir "$WORK/data" --address "127.0.0.1:$API" \
  --s3gateway-address "127.0.0.1:$S3" --worker-slots 0 "${TLS_ARGS[@]}" \
  >"$WORK/pachd.out" 2>"$WORK/pachd.log" &
PID=$!
for _ in $(seq 100); do
  grep -q listening "$WORK/pachd.out" 2>/dev/null && break
  sleep 0.1
done
grep -q listening "$WORK/pachd.out" || { cat "$WORK/pachd.log" >&2; echo "error: pachd did not start" >&2; exit 1; }

# The suite's users: without auth any credentials are accepted; with it,
# each signs with a token of its own (as access key and secret).
MAIN_KEY=main MAIN_SECRET=main-secret ALT_KEY=alt ALT_SECRET=alt-secret
TENANT_KEY=tenant TENANT_SECRET=tenant-secret
if [ "$SECURE" = 1 ]; then
  pc() { env PACH_CONFIG="$WORK/config.json" PACHD_ADDRESS="$SCHEME://127.0.0.1:$API" \
    ${CAS:+PACHD_SERVER_CAS="$CAS"} "$PACHCTL" "$@"; }
  pc enterprise activate any-code-activates >/dev/null
  MAIN_KEY=$(pc auth activate --initial-admin robot:s3-main | tail -n 1)
  ALT_KEY=$(pc auth get-auth-token -q robot:s3-alt)
  TENANT_KEY=$(pc auth get-auth-token -q robot:s3-tenant)
  MAIN_SECRET=$MAIN_KEY ALT_SECRET=$ALT_KEY TENANT_SECRET=$TENANT_KEY
fi

# Buckets are BRANCH.REPO: the suite's buckets are branches `master` of
# fresh repos. There is one owner, the one the gateway reports.
cat >"$WORK/s3tests.conf" <<CONF
[DEFAULT]
host = 127.0.0.1
port = $S3
is_secure = $HTTPS
ssl_verify = False

[fixtures]
bucket prefix = master.{random}-

[s3 main]
display_name = pachyderm
user_id = 00000000000000000000000000000000
email = main@example.com
api_name = PACHYDERM
access_key = $MAIN_KEY
secret_key = $MAIN_SECRET

[s3 alt]
display_name = pachyderm
user_id = 00000000000000000000000000000000
email = alt@example.com
access_key = $ALT_KEY
secret_key = $ALT_SECRET

[s3 tenant]
display_name = pachyderm
user_id = 00000000000000000000000000000000
access_key = $TENANT_KEY
secret_key = $TENANT_SECRET
email = tenant@example.com
tenant = testx

[iam]
email = s3@example.com
user_id = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
access_key = ABCDEFGHIJKLMNOPQRST
secret_key = abcdefghijklmnopqrstuvwxyzabcdefghijklmn
display_name = youruseridhere

[iam root]
access_key = AAAAAAAAAAAAAAAAAAaa
secret_key = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
user_id = RGW11111111111111111
email = account1@ceph.com

[iam alt root]
access_key = BBBBBBBBBBBBBBBBBBbb
secret_key = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
user_id = RGW22222222222222222
email = account2@ceph.com
CONF

cd "$WORK/s3-tests"
export S3TEST_CONF=$WORK/s3tests.conf
start=$(date +%s)
if [ "$MODE" = "--all" ]; then
  set +e
  "$VENV/bin/pytest" -q -p no:cacheprovider --junitxml="$WORK/junit.xml" \
    s3tests/functional/test_s3.py s3tests/functional/test_headers.py >"$WORK/pytest.out" 2>&1
  set -e
  out=${CARGO_TARGET_DIR:-$ROOT/target}/s3-tests-results.txt
  [ "$SECURE" != 1 ] || out=${out%-results.txt}-secure-results.txt
  cp "$WORK/pytest.out" "${out%.txt}.log"
  cp "$WORK/pachd.log" "${out%-results.txt}-pachd.log"
else
  mapfile -t tests < <(grep -v '^\s*#' "$LIST" | grep -v '^\s*$')
  set +e
  "$VENV/bin/pytest" -q -p no:cacheprovider --junitxml="$WORK/junit.xml" \
    "${tests[@]/#/s3tests/functional/}" >"$WORK/pytest.out" 2>&1
  set -e
  out=$WORK/results.txt
fi
# One line per test: OUTCOME file::name (a test whose teardown failed counts
# as failed).
python3 - "$WORK/junit.xml" >"$out" <<'PY'
import sys, xml.etree.ElementTree as ET
outcome = {}
for case in ET.parse(sys.argv[1]).iter("testcase"):
    name = case.get("classname", "").split(".")[-1] + ".py::" + case.get("name")
    kinds = {child.tag for child in case}
    if "failure" in kinds or "error" in kinds:
        outcome[name] = "FAIL"
    elif "skipped" in kinds:
        outcome.setdefault(name, "SKIP")
    else:
        outcome.setdefault(name, "PASS")
for name in sorted(outcome):
    print(outcome[name], name)
PY
elapsed=$(( $(date +%s) - start ))
echo "s3-tests: $(grep -c '^PASS' "$out") passed, $(grep -c '^FAIL' "$out") failed, $(grep -c '^SKIP' "$out") skipped in ${elapsed}s" >&2
if [ "$MODE" = "--all" ]; then
  echo "outcomes written to $out" >&2
  exit 0
fi
failed=0
while read -r t; do
  if ! grep -qxF "PASS $t" "$out"; then
    echo "FAILED: $t" >&2
    failed=1
  fi
done < <(grep -v '^\s*#' "$LIST" | grep -v '^\s*$')
if [ "$failed" -ne 0 ]; then
  tail -n 200 "$WORK/pytest.out" >&2
  exit 1
fi

#!/usr/bin/env bash
# Makes a throwaway CA and a certificate for 127.0.0.1 signed by it, valid
# two days, for pachd's TLS in tests and benchmarks on loopback:
#   scripts/loopback-ca.sh DIR   writes DIR/ca.pem (to trust, e.g. as
#                                PACHD_SERVER_CAS), DIR/tls.crt and DIR/tls.key
#                                (pachd --tls-cert / --tls-key)
set -euo pipefail
DIR=${1:?usage: scripts/loopback-ca.sh DIR}
mkdir -p "$DIR"
cd "$DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=loopback-test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj /CN=127.0.0.1 -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >ext
openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile ext -out tls.crt 2>/dev/null
rm -f tls.csr ext ca.srl

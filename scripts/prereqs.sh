#!/usr/bin/env bash
# Installs what building and testing need, when missing: protoc (gRPC code
# generation), jq (used by the end-to-end tests, as in Pachyderm's guides),
# bubblewrap (the sandbox pipelines run user code in), and slirp4netns and
# nftables (outbound network for datums, `pachd --datum-network outbound`),
# and python3 with venv (python-pachyderm's own test suite, the judge of the
# Pachyderm 1.9 API).
set -euo pipefail
missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

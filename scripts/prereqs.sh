#!/usr/bin/env bash
# Installs what building and testing need, when missing: protoc (gRPC code
# generation), jq (used by the end-to-end tests, as in Pachyderm's guides) and
# bubblewrap (the sandbox pipelines run user code in).
set -euo pipefail
missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

#!/usr/bin/env bash
# Installs, when missing, what only the tests need: etcd, Garage and Azurite
# (cluster mode is tested against a real etcd, a real S3 server and the Azure
# Blob emulator; Garage builds from source once, ~10 minutes on 2 cores, then
# stays in ~/.cargo/bin), kubernetes-validate (offline checks of
# deploy/kubernetes), and the tools Pachyderm's example pipelines call, so
# that they run unchanged on the host's userland: ImageMagick (`montage`) and
# OpenCV for Python (`cv2`); and the S3 gateway's judges: the aws CLI, boto3,
# pandas with s3fs, Polars, and ceph's s3-tests' requirements.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v montage >/dev/null 2>&1 || missing+=(imagemagick)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
# tests/tls.rs makes its certificates with openssl and calls the S3 gateway
# over https with curl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import cv2' >/dev/null 2>&1; then
  echo "installing: opencv-python-headless (pip)" >&2
  python3 -m pip install -q opencv-python-headless
fi
if ! command -v garage >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  echo "installing: garage 2.5.0 (cargo install, once)" >&2
  cargo install garage --version 2.5.0 --locked -q
fi
# Azurite (Microsoft's Azure Blob emulator) for the az:// tests; 3.35.0 is the
# last release that runs on node 20 (later ones need node 21+).
AZURITE_DIR="$HOME/.cache/pach-test-tools/azurite"
if [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
  echo "installing: azurite 3.35.0 (npm, into $AZURITE_DIR)" >&2
  npm install --silent --no-audit --no-fund --prefix "$AZURITE_DIR" azurite@3.35.0 >/dev/null
fi
# kubernetes-validate (offline schema validation of deploy/kubernetes) in a
# venv of its own.
KV_DIR="$HOME/.cache/pach-test-tools/kv"
if [ ! -x "$KV_DIR/bin/kubernetes-validate" ]; then
  echo "installing: kubernetes-validate (pip, into $KV_DIR)" >&2
  python3 -m venv "$KV_DIR"
  "$KV_DIR/bin/pip" install -q kubernetes-validate==1.37.0
fi
# S3 clients for the S3 gateway's tests (tests/s3gateway.rs), from PyPI, each
# in a venv of its own: the aws CLI, whose botocore pin clashes with
# s3fs's aiobotocore; boto3, pandas with s3fs, and Polars (its Rust
# object_store client reads Parquet from S3).
AWSCLI_DIR="$HOME/.cache/pach-test-tools/awscli"
if [ ! -x "$AWSCLI_DIR/bin/aws" ]; then
  echo "installing: awscli (pip, into $AWSCLI_DIR)" >&2
  python3 -m venv "$AWSCLI_DIR"
  "$AWSCLI_DIR/bin/pip" install -q awscli==1.46.3
fi
S3CLIENTS_DIR="$HOME/.cache/pach-test-tools/s3clients"
if ! "$S3CLIENTS_DIR/bin/python" -c 'import boto3, s3fs, pandas, polars' >/dev/null 2>&1; then
  echo "installing: boto3, s3fs, pandas, polars (pip, into $S3CLIENTS_DIR)" >&2
  python3 -m venv "$S3CLIENTS_DIR"
  # Pinned as one set that resolves: left open, pip's resolver walked back
  # to an s3fs whose fsspec release has been yanked, and failed.
  "$S3CLIENTS_DIR/bin/pip" install -q boto3==1.43.117 botocore==1.43.117 \
    s3fs==2026.9.0 fsspec==2026.9.0 aiobotocore==3.10.0 pandas==3.1.1 polars==2.1.0
fi
# ceph's s3-tests (scripts/s3-tests.sh) with its requirements, in a venv.
S3TESTS_DIR="$HOME/.cache/pach-test-tools/s3-tests"
if [ ! -x "$S3TESTS_DIR/bin/pytest" ]; then
  suite=""
  for d in "$(dirname "$0")/../../shared" "$(dirname "$0")/../../../shared"; do
    [ -f "$d/peer-suites/s3-tests/requirements.txt" ] && suite="$d/peer-suites/s3-tests" && break
  done
  if [ -n "$suite" ]; then
    echo "installing: s3-tests requirements (pip, into $S3TESTS_DIR)" >&2
    python3 -m venv "$S3TESTS_DIR"
    "$S3TESTS_DIR/bin/pip" install -q -r "$suite/requirements.txt"
  fi
fi

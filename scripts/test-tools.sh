#!/usr/bin/env bash
# Installs, when missing, what only the tests need: etcd (cluster mode is
# tested against a real one) and the tools Pachyderm's example pipelines
# call, so that they run unchanged on the host's userland: ImageMagick
# (`montage`) and OpenCV for Python (`cv2`).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v montage >/dev/null 2>&1 || missing+=(imagemagick)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import cv2' >/dev/null 2>&1; then
  echo "installing: opencv-python-headless (pip)" >&2
  python3 -m pip install -q opencv-python-headless
fi

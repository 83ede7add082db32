#!/usr/bin/env bash
# Installs, when missing, the tools Pachyderm's example pipelines call, so
# that the end-to-end tests can run those pipelines unchanged on the host's
# userland: ImageMagick (`montage`) and OpenCV for Python (`cv2`).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v montage >/dev/null 2>&1; then
  echo "installing: imagemagick" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq imagemagick >/dev/null
fi
if ! python3 -c 'import cv2' >/dev/null 2>&1; then
  echo "installing: opencv-python-headless (pip)" >&2
  python3 -m pip install -q opencv-python-headless
fi

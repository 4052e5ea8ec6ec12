#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: Python packages, the official
# sam2 package without its CUDA build (ENV.md), and Debian's chromium for the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements-dev.txt
# sam2 1.1.0 is source-only; an isolated build would download another torch + CUDA wheels.
SAM2_BUILD_CUDA=0 python -m pip install -q --no-deps --no-build-isolation sam2==1.1.0
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi

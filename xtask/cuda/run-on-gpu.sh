#!/usr/bin/env bash
# Runs a binary of gpu-bundle/ on the GPU machine: finds the CUDA 13 libraries (PyTorch's cu13
# wheels ship them) and puts them on LD_LIBRARY_PATH; libcuda.so.1 comes from the driver.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${DGL_CUDA_LIBS:-}" ]; then
  DGL_CUDA_LIBS=$(dirname "$(find / -name 'libcublas.so.13' -not -path '*/stubs/*' 2>/dev/null | head -1)")
fi
CUDNN=$(dirname "$(find / -name 'libcudnn.so.9' 2>/dev/null | head -1)" 2>/dev/null || true)
export LD_LIBRARY_PATH="$DGL_CUDA_LIBS${CUDNN:+:$CUDNN}:${LD_LIBRARY_PATH:-}"
BIN="$1"; shift
exec "$HERE/$BIN" "$@"

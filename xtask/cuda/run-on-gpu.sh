#!/usr/bin/env bash
# Runs a binary of gpu-bundle/ on the GPU machine: finds the CUDA 13 libraries (PyTorch's cu13
# wheels ship them) and cuDNN 9, and puts them on LD_LIBRARY_PATH; libcuda.so.1 comes from the
# driver. DGL_CUDA_LIBS / DGL_CUDNN_LIBS, when set (benchmarks/gpu-env.sh sets them once), skip the search.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${DGL_CUDA_LIBS:-}" ]; then
  DGL_CUDA_LIBS=$(dirname "$(find / -name 'libcublas.so.13' -not -path '*/stubs/*' 2>/dev/null | head -1)")
fi
if [ -z "${DGL_CUDNN_LIBS:-}" ]; then
  DGL_CUDNN_LIBS=$(dirname "$(find / -name 'libcudnn.so.9' 2>/dev/null | head -1)" 2>/dev/null || true)
fi
export LD_LIBRARY_PATH="$DGL_CUDA_LIBS${DGL_CUDNN_LIBS:+:$DGL_CUDNN_LIBS}:${LD_LIBRARY_PATH:-}"
BIN="$1"; shift
exec "$HERE/$BIN" "$@"

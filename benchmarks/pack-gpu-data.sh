#!/usr/bin/env bash
# Packs the real data the GPU runs need (FSDD + MNIST, 38 MB) as gpu-data.tar.xz (~25 MB, git-ignored)
# for the device tool's carry (64 MiB with gpu-bundle.tar.xz's ~20 MB). Usage: bash benchmarks/pack-gpu-data.sh [DATA_PARENT]
set -euo pipefail
PARENT="${1:-../shared}"
tar -C "$PARENT" -cf - data/fsdd data/mnist | xz -T0 -6 > gpu-data.tar.xz
ls -la gpu-data.tar.xz

#!/usr/bin/env bash
# One device call: CPU/CUDA op parity, candle-CUDA vs PyTorch eager on the same card, memory flatness over 500 steps,
# and a short paper-preset training run. Needs gpu-bundle/ (cargo xtask cuda-build) carried along.
# Results go to $OUT (or ./gpu-results). Usage on the GPU machine: bash benchmarks/gpu-check.sh
set -uo pipefail
OUT="${OUT:-gpu-results}"; mkdir -p "$OUT"
B=gpu-bundle/run.sh
# The device tool carries gpu-bundle.tar.xz (stripped, xz: ~20 MB) rather than gpu-bundle/ (~175 MB).
if [ ! -x "$B" ] && [ -f gpu-bundle.tar.xz ]; then
  mkdir -p gpu-bundle && (tar -C gpu-bundle -xJf gpu-bundle.tar.xz || python3 -c \
    "import tarfile; tarfile.open('gpu-bundle.tar.xz').extractall('gpu-bundle')") && chmod +x gpu-bundle/*
fi
PY=$(ls /opt/torch/.venv/bin/python 2>/dev/null || command -v python3)
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "== CPU vs CUDA parity of the project's ops (crates/dgl-models/tests/cuda_parity.rs)"
  timeout 120 $B cuda-parity --nocapture --test-threads 1
  for audio in 257x188 257x299; do
    echo "== candle fp32, audio 1x$audio"
    timeout 150 $B step-bench --preset paper --device cuda --batch 64 --steps 20 --audio $audio
    echo "== pytorch fp32 / tf32, audio 1x$audio"
    timeout 100 $PY benchmarks/pytorch_step.py --batch 64 --audio $audio --steps 20
    timeout 100 $PY benchmarks/pytorch_step.py --batch 64 --audio $audio --steps 20 --tf32
  done
} 2>&1 | tee "$OUT/bench.txt"
# Memory over 500+ steps: sample device memory every second during a DGL run.
( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 1; done ) > "$OUT/mem.txt" &
SAMPLER=$!
timeout 240 $B dgl train --method dgl --device cuda --epochs 20 --batch-size 32 --out "$OUT/run-tiny-cuda" --overwrite 2>&1 | tail -25 | tee "$OUT/train.txt"
kill $SAMPLER
echo "memory.used MiB samples (first, max, last): $(head -1 $OUT/mem.txt) $(sort -n $OUT/mem.txt | tail -1) $(tail -1 $OUT/mem.txt)" | tee -a "$OUT/train.txt"

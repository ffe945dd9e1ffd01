#!/usr/bin/env bash
# One device call (about 8 minutes, never more than $BUDGET seconds): CPU/CUDA op parity (the cuDNN
# convolution included), candle-CUDA vs PyTorch eager on the same card (fp32 and TF32, audio 1x257x188
# and 1x257x299, the project's cuDNN kernels and candle's ops in the same run), device memory over a
# 750-step training run. Needs gpu-bundle.tar.xz (`cargo xtask cuda-build`) carried along.
# Results go to $OUT (or ./gpu-results). Device tool:
#   run(command="bash benchmarks/gpu-check.sh", carry=["gpu-bundle.tar.xz"], timeout_s=560)
set -uo pipefail
OUT="${OUT:-gpu-results}"; mkdir -p "$OUT"
BUDGET="${BUDGET:-540}"
source "$(dirname "$0")/gpu-env.sh"

bench() { # bench AUDIO: candle (project kernels and candle's ops) and PyTorch, fp32 and TF32, one card
  local audio=$1
  echo "== candle fp32, audio 1x$audio: the project's kernels (cuDNN fwd+bwd) and candle's ops, interleaved"
  NVIDIA_TF32_OVERRIDE=0 stage 110 $B step-bench --preset paper --device cuda --batch 64 --steps 10 \
    --audio "$audio" --kernels both || { echo "(our kernels failed: candle's ops alone)"; \
    NVIDIA_TF32_OVERRIDE=0 stage 60 $B step-bench --preset paper --device cuda --batch 64 --steps 10 \
    --audio "$audio" --kernels candle; }
  echo "== pytorch fp32, audio 1x$audio"
  stage 45 $PY benchmarks/pytorch_step.py --batch 64 --audio "$audio" --steps 20
  echo "== candle TF32, audio 1x$audio (project's kernels)"
  stage 45 $B step-bench --preset paper --device cuda --batch 64 --steps 10 --audio "$audio" --tf32
  echo "== pytorch TF32, audio 1x$audio"
  stage 45 $PY benchmarks/pytorch_step.py --batch 64 --audio "$audio" --steps 20 --tf32
}

memory() { # device memory over 750 steps (tiny preset, 20 epochs x 38 steps), sampled every second
  ( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 1; done ) > "$OUT/mem.txt" &
  local sampler=$!
  local args=(dgl train --method dgl --device cuda --epochs 20 --batch-size 32 --out "$OUT/run-tiny-cuda" --overwrite)
  stage 150 $B "${args[@]}" 2>&1 | tail -25
  # If the project's kernels failed on this GPU, measure the memory with candle's ops (DGL_KERNELS=candle).
  [ "${PIPESTATUS[0]}" -ne 0 ] && echo "(retrying with DGL_KERNELS=candle)" && \
    DGL_KERNELS=candle stage 150 $B "${args[@]}" 2>&1 | tail -25
  kill $sampler
  rm -f "$OUT/run-tiny-cuda"/*.safetensors
  echo "memory.used MiB samples (first, max, last of $(wc -l < "$OUT/mem.txt")): $(head -1 "$OUT/mem.txt") \
$(sort -n "$OUT/mem.txt" | tail -1) $(tail -1 "$OUT/mem.txt")"
}

# In order of importance: parity, the official shape's benchmark, memory, the paper-text shape.
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "== CPU vs CUDA parity of the project's ops (crates/dgl-models/tests/cuda_parity.rs)"
  # NVIDIA_TF32_OVERRIDE=0: strict fp32 everywhere (candle's own cuDNN forward would otherwise use TF32).
  NVIDIA_TF32_OVERRIDE=0 stage 90 $B cuda-parity --nocapture --test-threads 1
  bench 257x188
  echo "== memory over a 750-step DGL training run"
  memory
  bench 257x299
  echo "gpu-check done in ${SECONDS}s"
} 2>&1 | tee "$OUT/bench.txt"
# The table for docs/performance.md (ms/step, samples/s, peak memory, ratios to PyTorch).
$PY benchmarks/gpu-report.py "$OUT/bench.txt" | tee "$OUT/report.md"

#!/usr/bin/env bash
# Paper-preset DGL training on the GPU (one device call, never more than $BUDGET seconds): the embedded
# default (synthetic, paper preset: 2x ResNet-18, 224x224 frames) and AV-digits (FSDD + MNIST, carried as
# gpu-data.tar.xz, made by benchmarks/pack-gpu-data.sh). EPOCHS (default 100, the paper's) and the
# per-run seconds (SYN_S, AVD_S) bound each run; a run that hits its limit is stopped by SIGTERM, which
# `dgl` answers with a checkpoint after the current step (exit 130), and its metrics.csv/jsonl keep every
# finished epoch. Checkpoints (~200 MB) are not brought back. TF32 is on (`--tf32`): PyTorch's default
# for convolutions (`cudnn.allow_tf32 = True`), so what the official code ran with on an Ampere+ GPU.
# DGL_KERNELS=candle (in the environment) runs candle's ops instead of the project's cuDNN convolution. Device tool:
#   run(command="bash benchmarks/gpu-train.sh", carry=["gpu-bundle.tar.xz","gpu-data.tar.xz"], timeout_s=580)
set -uo pipefail
OUT="${OUT:-gpu-results}"; mkdir -p "$OUT"
BUDGET="${BUDGET:-560}"
EPOCHS="${EPOCHS:-100}"
source "$(dirname "$0")/gpu-env.sh"
if [ ! -d gpu-data/data ] && [ -f gpu-data.tar.xz ]; then unpack gpu-data.tar.xz gpu-data; fi

train() { # train NAME SECONDS DGL-TRAIN-ARGS...
  local name=$1 secs=$2; shift 2
  local t0=$SECONDS
  stage "$secs" $B dgl train --method dgl --device cuda --preset paper --epochs "$EPOCHS" --tf32 \
    --out "$OUT/$name" --overwrite --quiet "$@" 2>&1 | tail -15
  local rc=${PIPESTATUS[0]} csv="$OUT/$name/metrics.csv" epochs=0
  [ -f "$csv" ] && epochs=$(($(wc -l < "$csv") - 1))
  echo "$name: exit $rc, wall $((SECONDS - t0)) s, epochs finished: $epochs"
  [ -f "$csv" ] && tail -3 "$csv"
  rm -f "$OUT/$name"/*.safetensors
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  train paper-synthetic-dgl "${SYN_S:-270}"
  if [ -d gpu-data/data/fsdd ]; then
    train paper-avdigits-dgl "${AVD_S:-270}" --dataset av-digits --root gpu-data/data
  else
    echo "AV-digits skipped: gpu-data.tar.xz not carried (bash benchmarks/pack-gpu-data.sh makes it)"
  fi
  echo "gpu-train done in ${SECONDS}s"
} 2>&1 | tee "$OUT/train-paper.txt"

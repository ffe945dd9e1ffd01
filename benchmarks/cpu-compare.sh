#!/usr/bin/env bash
# CPU: the project's training step (step-bench, release) against PyTorch eager on the same cores,
# alternated in one run: ours, PyTorch, ours, PyTorch, … for each case, ROUNDS times.
#
#   benchmarks/cpu-compare.sh                 # ROUNDS=2, THREADS = number of cores
#   ROUNDS=3 THREADS=2 CASES="paper tiny" benchmarks/cpu-compare.sh
#   PYTHON=/path/to/python-with-torch benchmarks/cpu-compare.sh   # use an existing PyTorch
#
# Cases (plain and DGL steps interleaved inside each program, 3 warm-up steps, then STEPS timed):
#   paper: 2x ResNet-18 (base 64), batch 8, audio 1x257x188, one 3x224x224 frame per sample
#   tiny:  2x ResNet-18 (base 8), batch 32, audio 1x65x63, one 3x32x32 frame (the embedded dataset)
# Both sides use THREADS threads (RAYON_NUM_THREADS / torch.set_num_threads). Each program reports
# its own peak RSS (VmHWM from /proc/self/status) and its RSS after the warm-up and at the end.
# Without PYTHON, PyTorch (CPU) is installed into benchmarks/.venv (gitignored) if missing: from
# download.pytorch.org's CPU index when reachable, else from PyPI. CI does not run this script.
# Raw output and the summary go to $OUT (default cpu-results/, gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-2}"
THREADS="${THREADS:-$(nproc)}"
CASES="${CASES:-paper tiny}"
STEPS_PAPER="${STEPS_PAPER:-5}"
STEPS_TINY="${STEPS_TINY:-20}"
OUT="${OUT:-cpu-results}"
mkdir -p "$OUT"

if [ -z "${PYTHON:-}" ]; then
  PYTHON=benchmarks/.venv/bin/python
  if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "== installing PyTorch (CPU) into benchmarks/.venv"
    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu \
      || benchmarks/.venv/bin/pip install -q torch torchvision
  fi
fi
"$PYTHON" -c "import torch" 2>/dev/null || { echo "no PyTorch for $PYTHON" >&2; exit 1; }

if [ -z "${BIN:-}" ]; then # BIN=path: an already built step-bench (e.g. an older commit's, for before/after)
  echo "== building step-bench (release)"
  cargo build --release -q -p dgl-benchmarks --bin step-bench
  BIN="${CARGO_TARGET_DIR:-target}/release/step-bench"
fi

RAW="$OUT/raw.txt"
: > "$RAW"
{
  date -u '+date %Y-%m-%d %H:%M UTC'
  echo "cpu $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, threads $THREADS"
  "$PYTHON" -c "import torch; print('torch', torch.__version__)" 2>/dev/null
} | tee -a "$RAW"

args_for() { # args_for CASE: the shared shape arguments
  case $1 in
    paper) echo "--preset paper --batch 8 --audio 257x188" ;;
    tiny) echo "--preset tiny --batch 32" ;;
  esac
}
steps_for() { [ "$1" = paper ] && echo "$STEPS_PAPER" || echo "$STEPS_TINY"; }

for round in $(seq 1 "$ROUNDS"); do
  for case in $CASES; do
    # shellcheck disable=SC2046
    {
      echo "== round $round, $case, ours; $(uptime | sed 's/.*load/load/')"
      RAYON_NUM_THREADS=$THREADS "$BIN" $(args_for "$case") --steps "$(steps_for "$case")" 2>&1 \
        | sed "s/^RESULT {/RESULT {\"round\": $round, \"case\": \"$case\", /"
      echo "== round $round, $case, pytorch; $(uptime | sed 's/.*load/load/')"
      OMP_NUM_THREADS=$THREADS "$PYTHON" benchmarks/pytorch_step.py --device cpu --threads "$THREADS" \
        $(args_for "$case") --steps "$(steps_for "$case")" --warmup 3 2>&1 | grep -v -i "numpy\|_conversion_method" \
        | sed "s/^RESULT {/RESULT {\"round\": $round, \"case\": \"$case\", /"
      echo "   $(uptime | sed 's/.*load/load/')"
    } | tee -a "$RAW"
  done
done

python3 - "$RAW" <<'PY' | tee "$OUT/summary.md"
import json, re, sys
rows = [json.loads(l[7:]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
loads = re.findall(r"load average: ([\d.]+)", open(sys.argv[1]).read())
def med(v):
    v = sorted(v); n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
print("| case | step | ours ms/step | PyTorch ms/step | ours samples/s | PyTorch samples/s | ours / PyTorch (samples/s) | best / best | ours peak RSS GiB | PyTorch peak RSS GiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for case in dict.fromkeys(r["case"] for r in rows):
    for routing in ("plain", "dgl"):
        sel = [r for r in rows if r["case"] == case and r["routing"] == routing]
        ours = [r for r in sel if r["impl"] != "pytorch"]
        ref = [r for r in sel if r["impl"] == "pytorch"]
        if not ours or not ref:
            continue
        o, p = med([r["ms"] for r in ours]), med([r["ms"] for r in ref])
        ob, pb = min(r["ms"] for r in ours), min(r["ms"] for r in ref)
        b = ours[0]["batch"]
        ratios = [f"{q['ms'] / r['ms']:.2f}" for r, q in zip(ours, ref)]
        print(f"| {case} (batch {b}) | {routing} | {o:.1f} (min {ob:.1f}) | {p:.1f} (min {pb:.1f}) | {b / o * 1e3:.1f} | "
              f"{b / p * 1e3:.1f} | **{p / o:.2f}x** ({', '.join(ratios)}) | {pb / ob:.2f}x | "
              f"{max(r['peak_rss_gib'] for r in ours):.3f} | {max(r['peak_gib'] for r in ref):.3f} |")
rounds = len({r["round"] for r in rows})
print(f"\nmedian over {rounds} run(s) per side and case (ratios of each round in brackets; best / best: fastest PyTorch run over fastest of ours); load average "
      f"(1 min) during the run: {min(map(float, loads)):.2f}-{max(map(float, loads)):.2f}" if loads else "")
PY

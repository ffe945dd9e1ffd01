#!/usr/bin/env bash
# Audio front-end throughput, ours vs librosa, same 200 FSDD clips, recipe librosa-cremad.
# Runs each side ROUNDS times interleaved (ours, librosa, librosa full-length, ours, ...) and
# reports the best clips/s of each and the ratios ours/librosa.
#   benchmarks/frontend.sh [DIR] [CLIPS] [ROUNDS]
# MALLOC_TUNED=1 runs both sides with glibc's malloc told not to hand freed memory back to the OS
# after every clip (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_; see docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/work/shared/data/fsdd/recordings}
CLIPS=${2:-200}
ROUNDS=${3:-2}
REPS=${REPS:-2}
cargo build --release -p dgl-benchmarks --bin frontend-bench >&2
BIN=${CARGO_TARGET_DIR:-target}/release/frontend-bench
if [ "${MALLOC_TUNED:-0}" = 1 ]; then
  export MALLOC_MMAP_THRESHOLD_=4000000 MALLOC_TRIM_THRESHOLD_=100000000
  echo "glibc malloc tuned: MALLOC_MMAP_THRESHOLD_=$MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_=$MALLOC_TRIM_THRESHOLD_ (both sides)"
fi
log=$(mktemp)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  "$BIN" --dir "$DIR" --clips "$CLIPS" --reps "$REPS" | tee -a "$log"
  python3 benchmarks/frontend_librosa.py --dir "$DIR" --clips "$CLIPS" --reps "$REPS" --pool 2 | tee -a "$log"
  python3 benchmarks/frontend_librosa.py --dir "$DIR" --clips "$CLIPS" --reps "$REPS" --pool 2 --full-length | tee -a "$log"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$log" <<'PY'
import re, sys
best = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT"):
        for k, v in re.findall(r"(\w+)=([\d.]+)", line):
            if k != "threads":
                best[k] = max(best.get(k, 0.0), float(v))
print("best clips/s: " + ", ".join(f"{k} {v:.1f}" for k, v in best.items()))
for tag in ("official", "full"):
    s, p = best[f"librosa_{tag}_single"], best[f"librosa_{tag}_pool"]
    print(f"ratio ours/librosa ({tag}): single-thread vs single-process {best['ours_single'] / s:.3f}x, "
          f"all threads vs Pool(2) {best['ours_multi'] / p:.3f}x")
PY
rm -f "$log"

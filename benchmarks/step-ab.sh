#!/usr/bin/env bash
# Interleaved A/B of two step-bench builds (e.g. before and after a change):
#   benchmarks/step-ab.sh OLD_STEP_BENCH NEW_STEP_BENCH [ROUNDS=6] [step-bench args, default --steps 10]
# Alternates which binary runs first each round, prints every RESULT line, the load average per
# round and the median ms/step of each binary and routing. Build the old one from a worktree:
#   git worktree add /tmp/old REV && (cd /tmp/old && cargo build --release -p dgl-benchmarks --bin step-bench)
set -euo pipefail
old=${1:?usage: step-ab.sh OLD NEW [ROUNDS] [ARGS...]}; new=${2:?usage: step-ab.sh OLD NEW [ROUNDS] [ARGS...]}
rounds=${3:-6}; shift $(( $# < 3 ? $# : 3 ))
args=("$@"); [ ${#args[@]} -eq 0 ] && args=(--steps 10)
log=$(mktemp)
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then order=(old new); else order=(new old); fi
  for v in "${order[@]}"; do
    bin=$old; [ "$v" = new ] && bin=$new
    "$bin" "${args[@]}" 2>&1 | grep RESULT | sed "s/^/$v round$r /" | tee -a "$log"
  done
  echo "round $r load $(cut -d' ' -f1-3 /proc/loadavg)"
done
python3 - "$log" <<'PY'
import collections, json, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    v = line.split()[0]
    j = json.loads(line.split("RESULT ", 1)[1])
    d[(j["routing"], v)].append(j["ms"])
for (routing, v), ms in sorted(d.items()):
    s = sorted(ms)
    print(f"{routing:6} {v}: median {s[len(s)//2]:.1f} ms/step  (rounds {', '.join(f'{x:.1f}' for x in ms)})")
PY
rm -f "$log"

#!/usr/bin/env python3
"""Turns the RESULT lines of a gpu-check.sh run (step-bench and pytorch_step.py, one card, one run)
into the Markdown table docs/performance.md needs: ms/step, samples/s, peak memory, and the ratios
candle/PyTorch (samples/s: higher is better; peak memory: lower is better).

    python3 benchmarks/gpu-report.py gpu-results/bench.txt
"""
import json
import sys


def main(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("RESULT "):
                rows.append(json.loads(line[len("RESULT "):]))
    if not rows:
        sys.exit(f"{path}: no RESULT lines (did the benchmarks run?)")
    key = lambda r: (r["audio"], r["precision"], r["routing"])
    torch = {key(r): r for r in rows if r["impl"] == "pytorch"}
    print("| audio | precision | step | implementation | ms/step | samples/s | peak GiB | samples/s vs PyTorch | peak vs PyTorch |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (key(r), r["impl"])):
        ref = torch.get(key(r))
        speed = f"{r['samples_per_s'] / ref['samples_per_s']:.2f}x" if ref and r["impl"] != "pytorch" else ""
        peak = (f"{r['peak_gib'] / ref['peak_gib']:.2f}x"
                if ref and r["impl"] != "pytorch" and r["peak_gib"] and ref["peak_gib"] else "")
        gib = "" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(f"| 1x{r['audio']} | {r['precision']} | {r['routing']} | {r['impl']} | {r['ms']:.1f} | "
              f"{r['samples_per_s']:.1f} | {gib} | {speed} | {peak} |")
    print("\ncandle's peak is the memory pool's high-water mark over all variants of one step-bench run; "
          "PyTorch's is torch.cuda.max_memory_allocated() over its run.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-results/bench.txt")

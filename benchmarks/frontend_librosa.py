#!/usr/bin/env python3
"""librosa reference for the audio front-end throughput (see frontend_bench.rs).

Does exactly the official CREMA-D loader's computation per clip:
    x, _ = librosa.load(path, sr=22050)
    x = np.tile(x, 3)[:66150]; x[x > 1.] = 1.; x[x < -1.] = -1.
    S = np.log(np.abs(librosa.stft(x, n_fft=512, hop_length=353)) + 1e-7)
on the first N files (sorted by name) of DIR; prints clips/s in one process and with a
multiprocessing Pool of 2.

Note: the official loader tiles 3 times only, so a clip shorter than 1 s (all of FSDD) yields
fewer than 66150 samples and fewer STFT frames than our 257x188 (ours tiles periodically to the
full 3 s). --full-length tiles to 66150 instead (same work as ours); both are reported.

    python3 benchmarks/frontend_librosa.py [--dir DIR] [--clips N] [--reps R] [--pool 2]
"""
import argparse, os, sys, time
from multiprocessing import Pool

import numpy as np
import librosa

N_SAMPLES = 66150
FULL = False


def one(path):
    x, _ = librosa.load(path, sr=22050)
    if FULL:
        x = np.tile(x, N_SAMPLES // len(x) + 1)[:N_SAMPLES]
    else:
        x = np.tile(x, 3)[:N_SAMPLES]
    x[x > 1.0] = 1.0
    x[x < -1.0] = -1.0
    s = librosa.stft(x, n_fft=512, hop_length=353)
    s = np.log(np.abs(s) + 1e-7)
    return s.shape[1]


def set_full(v):
    global FULL
    FULL = v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/work/shared/data/fsdd/recordings")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pool", type=int, default=2)
    ap.add_argument("--full-length", action="store_true")
    a = ap.parse_args()
    set_full(a.full_length)
    files = sorted(f for f in os.listdir(a.dir) if f.endswith(".wav"))[: a.clips]
    files = [os.path.join(a.dir, f) for f in files]
    import scipy, soundfile
    print(f"frontend_librosa: {len(files)} clips, librosa {librosa.__version__}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, soundfile {soundfile.__version__}, python {sys.version.split()[0]}, "
          f"{'full-length tile' if FULL else 'official np.tile(x, 3)'}")
    frames = [one(p) for p in files]  # warm-up (imports, resampler, page cache)
    print(f"mean STFT frames per clip: {np.mean(frames):.1f} (ours: 188)")
    with Pool(a.pool, initializer=set_full, initargs=(FULL,)) as pool:
        pool.map(one, files[: 4 * a.pool])  # warm the workers
        best1 = bestp = float("inf")
        tot1 = totp = 0.0
        for _ in range(a.reps):
            t0 = time.perf_counter()
            for p in files:
                one(p)
            s1 = time.perf_counter() - t0
            t0 = time.perf_counter()
            pool.map(one, files, chunksize=4)
            sp = time.perf_counter() - t0
            best1, bestp = min(best1, s1), min(bestp, sp)
            tot1 += s1
            totp += sp
    c = len(files)
    print(f"single process: {c / best1:.1f} clips/s (best of {a.reps}: {best1:.3f} s; total {tot1:.3f} s)")
    print(f"Pool({a.pool}): {c / bestp:.1f} clips/s (best of {a.reps}: {bestp:.3f} s; total {totp:.3f} s)")
    tag = "full" if FULL else "official"
    print(f"RESULT librosa_{tag}_single={c / best1:.3f} librosa_{tag}_pool={c / bestp:.3f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference outputs of librosa / scipy on real FSDD clips, for dgl-data's parity tests.

Usage (from anywhere; needs `pip install librosa scipy numpy soundfile soxr`):

    python3 crates/dgl-data/scripts/make_parity_fixtures.py [--fsdd /work/shared/data/fsdd/recordings]

Writes small float32 .npy files and `manifest.json` into crates/dgl-data/tests/fixtures/
(about 1 MB in all). The Rust tests (`tests/parity.rs`) read only these files; they never run Python.

Per clip `<id>` (8 kHz mono PCM16 wav):
  <id>.input.npy            the clip as `librosa.load(path, sr=None)` returns it (soundfile: int16 / 32768)
  <id>.soxr_22050.npy       `librosa.load(path, sr=22050)` (default res_type = soxr_hq)
  <id>.soxr_16000.npy       `librosa.load(path, sr=16000)`
STFT parity (the 8 kHz input is fed *as if* it were at the recipe's rate, so only the STFT is
compared):
  <id>.<recipe>.mag.npy     |S| (librosa recipes) or the one-sided PSD S (scipy-paper), selected columns
  <id>.<recipe>.out.npy     the recipe's final output (log, z-score), same columns
Full pipeline (decode -> resample -> tile/crop -> clip -> spectrogram), librosa-cremad at 22050 Hz and
scipy-paper at 16 kHz:
  <id>.<recipe>.pipeline.npy  final output, selected columns

Visual (Pillow, what torchvision's Resize / RandomResizedCrop call on PIL images):
  image.png                 a seeded 41x29 RGB test image
  image.<case>.npy          `Image.resize(size, BILINEAR)` (after `Image.crop` for the crop case),
                            float32 [H, W, 3] of uint8 values

Codecs (decoder checks):
  codec_tone.{flac,ogg,mp3} 0.25 s stereo at 8 kHz: 440 Hz (0.5) left, 440 Hz (0.25) right
  codec_tone.ref.npy        soundfile's decoding of the FLAC, averaged to mono
  codec_tone.<ext>.ref.npy  soundfile's (libsndfile's) decoding of the Ogg / MP3, averaged to mono

Tiling: `np.tile(x, ceil(n / len(x)))[:n]` from start 0, then clip to [-1, 1] (the official CREMA-D
loader tiles exactly 3 times, which is the same whenever 3 repetitions reach n).
Columns: frames 0..7, every 16th frame, and the last 4 (listed in the manifest).
"""
import argparse
import json
import math
import os

import librosa
import numpy as np
import scipy
import scipy.signal
import soundfile

CLIPS = ["0_george_0", "3_jackson_12", "7_theo_30", "9_yweweler_5"]

RECIPES = {
    # name: (sample rate, n_samples, n_fft, hop)
    "librosa-cremad": (22050, 66150, 512, 353),
    "librosa-ks": (16000, 80000, 256, 128),
    "scipy-paper": (16000, 48000, 512, 159),
}


def columns(t):
    cols = set(range(min(8, t))) | set(range(0, t, 16)) | set(range(max(0, t - 4), t))
    return sorted(cols)


def fit(x, n):
    reps = int(math.ceil(n / len(x)))
    y = np.tile(x, reps)[:n].astype(np.float32)
    y[y > 1.0] = 1.0
    y[y < -1.0] = -1.0
    return y


def recipe_outputs(name, y):
    """(magnitude-or-PSD, final output) as [F, T] float64 arrays."""
    sr, n, n_fft, hop = RECIPES[name]
    assert len(y) == n
    if name.startswith("librosa"):
        s = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="reflect"))
        return s.astype(np.float64), np.log(s.astype(np.float64) + 1e-7)
    # scipy-paper (PMR-style): defaults window=('tukey', .25), detrend='constant', scaling='density'
    _, _, p = scipy.signal.spectrogram(y.astype(np.float64), sr, nperseg=512, noverlap=353)
    out = np.log(p + 1e-7)
    out = (out - out.mean()) / (out.std() + 1e-9)
    return p, out


def save(path, arr):
    np.save(path, np.ascontiguousarray(arr, dtype=np.float32))


def write_codec_fixtures(out):
    t = np.arange(2000) / 8000.0
    s = np.sin(2 * np.pi * 440.0 * t)
    x = np.stack([0.5 * s, 0.25 * s], axis=1).astype(np.float32)
    for fmt, sub, ext in [("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")]:
        soundfile.write(os.path.join(out, f"codec_tone.{ext}"), x, 8000, format=fmt, subtype=sub)
    ref, sr = soundfile.read(os.path.join(out, "codec_tone.flac"), dtype="float32")
    assert sr == 8000
    save(os.path.join(out, "codec_tone.ref.npy"), ref.mean(axis=1))
    for ext in ("ogg", "mp3"):
        ref, _ = soundfile.read(os.path.join(out, f"codec_tone.{ext}"), dtype="float32")
        save(os.path.join(out, f"codec_tone.{ext}.ref.npy"), ref.mean(axis=1))


def write_image_fixtures(out):
    from PIL import Image

    rs = np.random.RandomState(0)
    yy, xx = np.mgrid[0:29, 0:41]
    base = np.stack([xx * 6, yy * 8, (xx + yy) * 3], axis=-1).astype(np.float64)
    img = np.clip(base + rs.randint(-40, 40, size=base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img, "RGB").save(os.path.join(out, "image.png"))
    im = Image.open(os.path.join(out, "image.png")).convert("RGB")
    cases = {
        # name: (crop box (left, upper, right, lower) or None, (width, height))
        "up_64x48": (None, (64, 48)),
        "down_17x13": (None, (17, 13)),
        "crop_30x30": ((5, 3, 30, 23), (30, 30)),
    }
    for name, (box, size) in cases.items():
        src = im.crop(box) if box else im
        r = np.asarray(src.resize(size, Image.BILINEAR), dtype=np.float32)
        save(os.path.join(out, f"image.{name}.npy"), r)
    return {k: {"crop": v[0], "size": v[1]} for k, v in cases.items()}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--fsdd", default="/work/shared/data/fsdd/recordings")
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    manifest = {
        "generator": "crates/dgl-data/scripts/make_parity_fixtures.py",
        "versions": {
            "librosa": librosa.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "soundfile": soundfile.__version__,
            "soxr": __import__("soxr").__version__,
            "pillow": __import__("PIL").__version__,
        },
        "clips": CLIPS,
        "recipes": {},
        "pipelines": {"librosa-cremad": 22050, "scipy-paper": 16000},
    }
    for name, (sr, n, n_fft, hop) in RECIPES.items():
        t = 1 + n // hop if name.startswith("librosa") else (n - n_fft) // hop + 1
        manifest["recipes"][name] = {"sample_rate": sr, "n_samples": n, "n_fft": n_fft, "hop": hop,
                                     "frames": t, "columns": columns(t)}
    for clip in CLIPS:
        path = os.path.join(args.fsdd, clip + ".wav")
        x, sr0 = librosa.load(path, sr=None)
        assert sr0 == 8000, (path, sr0)
        save(os.path.join(args.out, f"{clip}.input.npy"), x)
        resampled = {}
        for rate in (22050, 16000):
            y, _ = librosa.load(path, sr=rate)  # res_type='soxr_hq' (librosa's default)
            resampled[rate] = y
            save(os.path.join(args.out, f"{clip}.soxr_{rate}.npy"), y)
        for name, meta in manifest["recipes"].items():
            cols = meta["columns"]
            mag, out = recipe_outputs(name, fit(x, meta["n_samples"]))
            assert mag.shape[1] == meta["frames"], (name, mag.shape)
            save(os.path.join(args.out, f"{clip}.{name}.mag.npy"), mag[:, cols])
            save(os.path.join(args.out, f"{clip}.{name}.out.npy"), out[:, cols])
        for name, rate in manifest["pipelines"].items():
            meta = manifest["recipes"][name]
            _, out = recipe_outputs(name, fit(resampled[rate], meta["n_samples"]))
            save(os.path.join(args.out, f"{clip}.{name}.pipeline.npy"), out[:, meta["columns"]])
    manifest["image_cases"] = write_image_fixtures(args.out)
    write_codec_fixtures(args.out)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(args.out, p)) for p in os.listdir(args.out))
    print(f"wrote {len(os.listdir(args.out))} files, {total / 1e6:.2f} MB, to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A tiny, seeded pickle with exactly the structure of MMSA's CMU-MOSI feature pickles, for the
exporter `export_mmsa.py` and the Rust test `tests/mosi_export.rs`.

Usage (needs numpy only):

    python3 crates/dgl-data/scripts/make_tiny_mmsa_pickle.py [--out-dir crates/dgl-data/tests/fixtures]
    python3 crates/dgl-data/scripts/export_mmsa.py crates/dgl-data/tests/fixtures/mosi-tiny.pkl \
        crates/dgl-data/tests/fixtures/mosi-tiny --force

Writes into OUT_DIR (default: crates/dgl-data/tests/fixtures next to this script):

  mosi-tiny.pkl               {'train', 'valid', 'test'} -> dict with every key of an MMSA pickle
                              (thuiar/MMSA README "Datasets", src/MMSA/data_loader.py
                              MMDataset.__init_mosi): raw_text, audio (N, 6, 5), vision (N, 5, 20),
                              id ('video$_$clip'), text (N, 4, 8) (the BERT-feature array; 768 wide
                              in the real pickles), text_bert (N, 3, 4) (token ids / mask / segment
                              ids), audio_lengths, vision_lengths, annotations,
                              classification_labels (deprecated), regression_labels in [-3, 3].
                              Sizes: 6 train / 3 valid / 4 test, the *unaligned* layout (a different
                              length per modality, as unaligned_50.pkl: 50 / 500 / 375).
  mosi-tiny.expected.csv      mmsa_id,mmsa_split,score for every sample (score = repr of the float32
                              regression label as a double), written here and NOT by the exporter,
                              so the Rust test checks the exporter against the source.
  mosi-tiny.first-sample.txt  the raw arrays of train sample 0 (before any MMSA clean-up: audio
                              holds -inf), one line per time step: `<modality> <t> v0 v1 ...`
                              (modality = audio | vision | text as in the pickle).

Edge cases on purpose: scores of exactly 0.0 (train and test) and -0.0 (valid); -inf in audio
(train sample 0, and a valid sample) as in real MOSI COVAREP features; zero padding past each
sequence's length; ids with '$_$' (MMSA's separator), a space, a '/' (not a file name), two ids
that differ only after sanitising ('a b' vs 'a_b'), and two that differ only in case.
Deterministic: a fixed seed, fixed scores and ids, pickle protocol 4.
"""
import argparse
import os
import pickle

import numpy as np

SEED = 20250415
L_TEXT, L_AUDIO, L_VISION = 4, 6, 5
D_TEXT, D_AUDIO, D_VISION = 8, 5, 20

# (mmsa id, regression score) per split. Scores: MOSI means of annotator ratings in [-3, 3].
SPLITS = {
    "train": [
        ("03bSnISJMiM$_$1", -1.4),
        ("03bSnISJMiM$_$2", 0.0),
        ("my video$_$3", 2.2),
        ("a b$_$1", -0.6),
        ("a_b$_$1", 1.8),
        ("Zx9$_$4", 0.4),
    ],
    "valid": [
        ("cut/1$_$5", -2.0),
        ("zX9$_$4", -0.0),
        ("Vid.0$_$7", 1.2),
    ],
    "test": [
        ("tEsT$_$1", 0.0),
        ("tEsT$_$2", -0.8),
        ("tEsT$_$3", 2.6),
        ("tEsT$_$4", -3.0),
    ],
}


def annotation(score):
    return "Positive" if score > 0 else ("Negative" if score < 0 else "Neutral")


def make_split(rng, rows, name):
    n = len(rows)
    ids = np.array([r[0] for r in rows], dtype=object)
    scores = np.array([r[1] for r in rows], dtype=np.float32)
    audio_len = rng.integers(2, L_AUDIO + 1, size=n)
    vision_len = rng.integers(2, L_VISION + 1, size=n)
    text_len = rng.integers(2, L_TEXT + 1, size=n)
    audio = np.zeros((n, L_AUDIO, D_AUDIO), np.float32)
    vision = np.zeros((n, L_VISION, D_VISION), np.float32)
    text = np.zeros((n, L_TEXT, D_TEXT), np.float32)
    text_bert = np.zeros((n, 3, L_TEXT), np.float32)
    for i in range(n):
        audio[i, : audio_len[i]] = rng.normal(0, 1, (audio_len[i], D_AUDIO)).round(3)
        vision[i, : vision_len[i]] = rng.normal(0, 1, (vision_len[i], D_VISION)).round(3)
        text[i, : text_len[i]] = rng.normal(0, 0.5, (text_len[i], D_TEXT)).round(3)
        text_bert[i, 0, : text_len[i]] = rng.integers(1000, 30000, text_len[i])
        text_bert[i, 1, : text_len[i]] = 1
    # COVAREP features hold -inf (log of 0) where MMSA sets them to 0 (data_loader.py).
    if name == "train":
        audio[0, 0, 2] = -np.inf
        audio[0, 1, 4] = -np.inf
    if name == "valid":
        audio[1, 0, 0] = -np.inf
    return {
        "raw_text": np.array([f"utterance {r[0]}" for r in rows]),
        "audio": audio,
        "vision": vision,
        "id": ids,
        "text": text,
        "text_bert": text_bert,
        "audio_lengths": [int(v) for v in audio_len],
        "vision_lengths": [int(v) for v in vision_len],
        "annotations": np.array([annotation(r[1]) for r in rows]),
        "classification_labels": np.array([0.0 if s < 0 else (1.0 if s == 0 else 2.0) for s in scores]),
        "regression_labels": scores,
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    data = {name: make_split(rng, rows, name) for name, rows in SPLITS.items()}
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "mosi-tiny.pkl"), "wb") as f:
        pickle.dump(data, f, protocol=4)
    with open(os.path.join(args.out_dir, "mosi-tiny.expected.csv"), "w", newline="\n") as f:
        f.write("mmsa_id,mmsa_split,score\n")
        for name in ("train", "valid", "test"):
            d = data[name]
            for mid, s in zip(d["id"], d["regression_labels"]):
                assert "," not in mid and '"' not in mid
                f.write(f"{mid},{name},{float(s)!r}\n")
    with open(os.path.join(args.out_dir, "mosi-tiny.first-sample.txt"), "w", newline="\n") as f:
        for key in ("audio", "vision", "text"):
            for t, row in enumerate(data["train"][key][0]):
                f.write(f"{key} {t} " + " ".join(repr(float(v)) for v in row) + "\n")
    for name, d in data.items():
        print(f"{name}: {len(d['id'])} samples, audio {d['audio'].shape}, vision {d['vision'].shape}, "
              f"text {d['text'].shape}, -inf in audio {int(np.isneginf(d['audio']).sum())}")
    print(f"wrote mosi-tiny.pkl, mosi-tiny.expected.csv, mosi-tiny.first-sample.txt in {os.path.normpath(args.out_dir)}")


if __name__ == "__main__":
    main()

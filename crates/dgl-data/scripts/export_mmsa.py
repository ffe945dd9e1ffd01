#!/usr/bin/env python3
"""Exports an MMSA feature pickle (CMU-MOSI / MOSEI, e.g. MOSI's aligned_50.pkl or
unaligned_50.pkl from thuiar/MMSA) to dgl-data's generic dataset format, two classes.

Usage (Python 3 with numpy; numpy >= 1.26 loads pickles written by numpy 1.x or 2.x):

    python3 export_mmsa.py PICKLE OUT_DIR [--zero-label positive|drop]
        [--valid-split train|test|drop] [--modalities text,audio,vision] [--dtype f4|f8] [--force]

then train with `[data.dataset] kind = "generic", root = "OUT_DIR"`.

Input (MMSA README "Datasets"; src/MMSA/data_loader.py, MMDataset.__init_mosi): a dict
{'train', 'valid', 'test'}, each a dict of arrays over its N samples. Read here: 'id' (N,)
strings 'video$_$clip', 'regression_labels' (N,) sentiment scores in [-3, 3], and per selected
modality 'audio' (N, L_a, 5) COVAREP, 'vision' (N, L_v, 20) FACET, 'text' (N, L_t, 768) BERT
features (not 'text_bert', the (N, 3, L_t) token ids / masks); 'audio_lengths' and
'vision_lengths' are copied to ids.csv when present. Other keys (raw_text, annotations, the
deprecated classification_labels) are not used. aligned_50.pkl: L = 50 for every modality;
unaligned_50.pkl: text 50, audio 500, vision 375. Each sample is written whole, padding included,
so every sample of a modality has the same shape (the unaligned modalities differ in length; the
MLP-Mixer model resamples each sequence to model.mixer.seq_len).

Output (crates/dgl-data/src/datasets/generic.rs, per-modality layout):

  OUT_DIR/manifest.csv                 id,label,split   label = negative | positive, split = train | test
  OUT_DIR/classes.txt                  negative, positive (label 0 and 1)
  OUT_DIR/features/<modality>/<id>.npy float32 ('<f4', C order; '<f8' with --dtype f8), the sample's
                                       (L, D) array; modality = audio | visual (MMSA 'vision') | text
  OUT_DIR/ids.csv                      id,mmsa_id,mmsa_split,score,audio_length,vision_length
                                       (every exported sample; score = the MMSA regression label)
  OUT_DIR/export.json                  the source, the options and the counts

Conventions:
- Two classes from the regression score s (MMSA src/MMSA/utils/metricsTop.py,
  MetricsTop.__eval_mosei_regression, which MOSI uses):
  --zero-label positive (default) = "Has0": positive iff s >= 0 (`binary_truth = (test_truth >= 0)`),
      so s == 0 (and -0.0) is positive; every sample is kept. MMSA's Has0_acc_2 and Has0_F1_score.
  --zero-label drop = "Non0": samples with s == 0 are left out (counted and printed), positive iff
      s > 0 (`non_zeros = [i ... if e != 0]`, `test_truth[non_zeros] > 0`). MMSA's Non0_acc_2.
  Which one a paper reports is often unsaid; DGL does not say. Predictions of a two-logit
  classifier are the argmax, so the pred >= 0 vs > 0 distinction of MMSA's regression metrics
  does not arise; only the truth side (which this option sets) matters.
- Splits: the generic format has train and test only (the trainer carves its validation split out
  of train). --valid-split train (default) adds MMSA's 'valid' rows to train (so the trainer's
  validation is a random part of train + valid, not MMSA's valid split); test sends them to test;
  drop leaves them out. MOSI: 1284 train / 229 valid / 686 test.
- Audio -inf -> 0 exactly as MMSA (data_loader.py: `self.audio[self.audio == -np.inf] = 0`). Any
  other NaN / Inf in any exported modality, or a non-finite score, is an error naming the split,
  the sample index and id, and the modality (dgl-data refuses non-finite values when reading).
- Ids: dgl-data needs ids usable as file names. Each id is sanitised to [A-Za-z0-9._-] (every
  other character, MMSA's '$' and spaces included, becomes '_'; a leading '.' becomes '_') and
  made unique case-insensitively (for case-insensitive file systems) by appending -2, -3, ...;
  ids.csv maps every exported id back to its MMSA id and split.

OUT_DIR must be empty or absent; --force writes into a non-empty one after deleting the files this
script writes there (features/, manifest.csv, classes.txt, ids.csv, export.json; nothing else).
"""
import argparse
import csv
import hashlib
import json
import os
import pickle
import re
import shutil
import sys

import numpy as np

SPLITS = ("train", "valid", "test")
CLASSES = ("negative", "positive")
# MMSA key -> output modality name.
MODALITIES = {"audio": "audio", "vision": "visual", "text": "text"}
ALIASES = {"visual": "vision"}
OWNED = ("features", "manifest.csv", "classes.txt", "ids.csv", "export.json")


class ExportError(Exception):
    pass


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Export an MMSA (CMU-MOSI) pickle to dgl-data's generic dataset format (2 classes).",
        epilog="See the module docstring (head of this file) for the conventions.",
    )
    ap.add_argument("pickle", help="MMSA pickle, e.g. MOSI/Processed/unaligned_50.pkl")
    ap.add_argument("out_dir", help="output folder (empty or absent unless --force)")
    ap.add_argument("--zero-label", choices=("positive", "drop"), default="positive",
                    help="score == 0: positive (Has0, default) or drop the sample (Non0)")
    ap.add_argument("--valid-split", choices=("train", "test", "drop"), default="train",
                    help="where MMSA's valid rows go (default train; the trainer carves its own validation)")
    ap.add_argument("--modalities", default="text,audio,vision",
                    help="comma-separated MMSA modalities among text, audio, vision (default all three)")
    ap.add_argument("--dtype", choices=("f4", "f8"), default="f4", help="feature dtype (default f4)")
    ap.add_argument("--force", action="store_true", help="write into a non-empty OUT_DIR (see the docstring)")
    args = ap.parse_args(argv)
    mods = []
    for m in args.modalities.split(","):
        m = ALIASES.get(m.strip(), m.strip())
        if m not in MODALITIES:
            ap.error(f"unknown modality {m!r} in --modalities (choose among text, audio, vision)")
        if m in mods:
            ap.error(f"modality {m!r} given twice in --modalities")
        mods.append(m)
    args.modalities = mods
    return args


def load(path, needed_splits, modalities):
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, ModuleNotFoundError, AttributeError) as e:
        raise ExportError(f"{path}: cannot read the pickle ({type(e).__name__}: {e})")
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a dict {{'train', 'valid', 'test'}}, found {type(data).__name__}")
    out = {}
    for split in needed_splits:
        if split not in data:
            raise ExportError(f"{path}: no split {split!r} (keys: {sorted(map(str, data))})")
        d = data[split]
        if not isinstance(d, dict):
            raise ExportError(f"{path}: split {split!r} is a {type(d).__name__}, expected a dict")
        for key in ("id", "regression_labels", *modalities):
            if key not in d:
                raise ExportError(f"{path}: split {split!r} has no key {key!r} (keys: {sorted(map(str, d))})")
        ids = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(d["id"]).reshape(-1)]
        n = len(ids)
        scores = np.asarray(d["regression_labels"], dtype=np.float64)
        if scores.size != n:
            raise ExportError(f"{path}: split {split!r}: 'regression_labels' has {scores.size} values for {n} ids")
        scores = scores.reshape(-1)
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            i = int(bad[0])
            raise ExportError(
                f"{path}: split {split!r}, sample {i} (id {ids[i]!r}): regression label {scores[i]} is not finite"
                f" ({bad.size} such labels in the split)")
        feats = {}
        for key in modalities:
            a = np.asarray(d[key])
            if a.ndim != 3 or a.shape[0] != n:
                raise ExportError(
                    f"{path}: split {split!r}: {key!r} has shape {a.shape}, expected (N={n}, L, D)")
            if not np.issubdtype(a.dtype, np.number):
                raise ExportError(f"{path}: split {split!r}: {key!r} has dtype {a.dtype}, expected numbers")
            feats[key] = a
        lengths = {k: [int(v) for v in np.asarray(d[k]).reshape(-1)] for k in ("audio_lengths", "vision_lengths")
                   if k in d and np.asarray(d[k]).size == n}
        out[split] = {"ids": ids, "scores": scores, "feats": feats, "lengths": lengths}
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sanitise(mmsa_id):
    s = re.sub(r"[^A-Za-z0-9._-]", "_", mmsa_id)
    if s.startswith("."):
        s = "_" + s[1:]
    return s or "sample"


def unique_ids(names):
    """Sanitised ids for `names`, in order, unique case-insensitively: a repeat gets -2, -3, ...
    (never another sample's own sanitised id)."""
    base = [sanitise(n) for n in names]
    natural = {b.lower() for b in base}
    used, out = set(), []
    for b in base:
        cand, k = b, 1
        while cand.lower() in used or (cand != b and cand.lower() in natural):
            k += 1
            cand = f"{b}-{k}"
        used.add(cand.lower())
        out.append(cand)
    return out


def clean(feats, split, index, mmsa_id, key, dtype):
    """One sample's array of modality `key` in `dtype`, audio -inf set to 0 (MMSA), and the number
    of -inf so replaced; any other NaN / Inf (or an overflow of `dtype`) is an error."""
    a = np.array(feats[index], dtype=np.float64)
    n_neg_inf = 0
    if key == "audio":
        mask = a == -np.inf
        n_neg_inf = int(mask.sum())
        a[mask] = 0.0
    where = f"split {split!r}, sample {index} (id {mmsa_id!r}), modality {key!r}"
    if not np.all(np.isfinite(a)):
        nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        first = tuple(int(v) for v in np.argwhere(~np.isfinite(a))[0])
        rule = " after the audio -inf -> 0 rule" if key == "audio" else ""
        raise ExportError(f"{where}: {nan} NaN and {inf} Inf values{rule} (first at {first})")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a.astype(dtype))
    if not np.all(np.isfinite(out)):
        raise ExportError(f"{where}: values overflow {dtype.str}")
    return out, n_neg_inf


def prepare_out(out_dir, force):
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ExportError(f"{out_dir}: exists and is not a folder")
        if os.listdir(out_dir):
            if not force:
                raise ExportError(f"{out_dir}: not empty (use --force to overwrite the files this script writes)")
            for name in OWNED:
                p = os.path.join(out_dir, name)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                elif os.path.lexists(p):
                    os.remove(p)
    os.makedirs(out_dir, exist_ok=True)


def export(args):
    if not args.force and os.path.isdir(args.out_dir) and os.listdir(args.out_dir):
        prepare_out(args.out_dir, False)  # the error, before the pickle is read
    needed = ["train", "test"] + ([] if args.valid_split == "drop" else ["valid"])
    data = load(args.pickle, [s for s in SPLITS if s in needed], args.modalities)
    dest = {"train": "train", "test": "test", "valid": None if args.valid_split == "drop" else args.valid_split}
    dtype = np.dtype("<" + args.dtype)

    # Rows to export, in MMSA order (train, valid, test).
    rows, zeros, dropped_zero = [], {}, 0
    for split in SPLITS:
        if dest[split] is None:
            continue
        d = data[split]
        zeros[split] = int(np.sum(d["scores"] == 0))
        for i, (mid, s) in enumerate(zip(d["ids"], d["scores"])):
            if s == 0 and args.zero_label == "drop":
                dropped_zero += 1
                continue
            label = int(s >= 0) if args.zero_label == "positive" else int(s > 0)
            rows.append((split, i, mid, float(s), label))
    if not any(dest[r[0]] == "train" for r in rows) or not any(dest[r[0]] == "test" for r in rows):
        raise ExportError("the export would leave the train or the test split empty")
    ids = unique_ids([r[2] for r in rows])
    renamed = sum(1 for r, i in zip(rows, ids) if r[2] != i)
    dup_mmsa = len(rows) - len({(r[2]) for r in rows})

    # Every sample is checked before anything is written.
    neg_inf = {s: 0 for s in SPLITS}
    for split, i, mid, _, _ in rows:
        for key in args.modalities:
            neg_inf[split] += clean(data[split]["feats"][key], split, i, mid, key, dtype)[1]

    prepare_out(args.out_dir, args.force)
    for key in args.modalities:
        os.makedirs(os.path.join(args.out_dir, "features", MODALITIES[key]), exist_ok=True)
    for (split, i, mid, _, _), out_id in zip(rows, ids):
        for key in args.modalities:
            arr = clean(data[split]["feats"][key], split, i, mid, key, dtype)[0]
            np.save(os.path.join(args.out_dir, "features", MODALITIES[key], out_id + ".npy"), arr,
                    allow_pickle=False)

    with open(os.path.join(args.out_dir, "classes.txt"), "w", newline="\n") as f:
        f.write("".join(c + "\n" for c in CLASSES))
    with open(os.path.join(args.out_dir, "manifest.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "label", "split"])
        for (split, _, _, _, label), out_id in zip(rows, ids):
            w.writerow([out_id, CLASSES[label], dest[split]])
    with open(os.path.join(args.out_dir, "ids.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "mmsa_id", "mmsa_split", "score", "audio_length", "vision_length"])
        for (split, i, mid, s, _), out_id in zip(rows, ids):
            ln = data[split]["lengths"]
            w.writerow([out_id, mid, split, repr(s),
                        ln["audio_lengths"][i] if "audio_lengths" in ln else "",
                        ln["vision_lengths"][i] if "vision_lengths" in ln else ""])

    counts = {}
    for (split, _, _, _, label) in rows:
        c = counts.setdefault(dest[split], {n: 0 for n in CLASSES})
        c[CLASSES[label]] += 1
    per_mmsa = {s: len(data[s]["ids"]) for s in data}
    shapes = {MODALITIES[k]: list(data["train"]["feats"][k].shape[1:]) for k in args.modalities}
    summary = {
        "source": args.pickle,
        "source_sha256": sha256(args.pickle),
        "generator": "crates/dgl-data/scripts/export_mmsa.py",
        "options": {"zero_label": args.zero_label, "valid_split": args.valid_split,
                    "modalities": args.modalities, "dtype": args.dtype},
        "mmsa_samples": per_mmsa,
        "zero_scores": zeros,
        "zero_scores_dropped": dropped_zero,
        "audio_neg_inf_set_to_zero": {s: neg_inf[s] for s in zeros},
        "ids_renamed": renamed,
        "duplicate_mmsa_ids": dup_mmsa,
        "samples": counts,
        "shapes": shapes,
        "classes": list(CLASSES),
    }
    with open(os.path.join(args.out_dir, "export.json"), "w", newline="\n") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    return summary


def print_summary(s, out_dir):
    print("MMSA samples: " + ", ".join(f"{k} {v}" for k, v in s["mmsa_samples"].items()))
    o = s["options"]
    print(f"valid rows -> {o['valid_split']}; zero scores: "
          + ", ".join(f"{k} {v}" for k, v in s["zero_scores"].items())
          + (f" -> {s['zero_scores_dropped']} dropped (Non0: positive = score > 0)" if o["zero_label"] == "drop"
             else " -> positive (Has0: positive = score >= 0)"))
    for split in ("train", "test"):
        c = s["samples"].get(split, {})
        print(f"{split}: {sum(c.values())} samples (" + ", ".join(f"{k} {v}" for k, v in c.items()) + ")")
    print("shapes: " + ", ".join(f"{k} {tuple(v)}" for k, v in s["shapes"].items()) + f" ({o['dtype']})")
    if "audio" in o["modalities"]:
        print("audio -inf set to 0: " + ", ".join(f"{k} {v}" for k, v in s["audio_neg_inf_set_to_zero"].items()))
    print(f"ids renamed to be file names: {s['ids_renamed']}; duplicate MMSA ids: {s['duplicate_mmsa_ids']}"
          f" (mapping in ids.csv)")
    print(f"wrote {out_dir}")


def main(argv=None):
    args = parse_args(argv)
    try:
        s = export(args)
    except ExportError as e:
        print(f"export_mmsa: error: {e}", file=sys.stderr)
        return 1
    print_summary(s, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

//! Hostile input: every bad file is a clear error naming the file (and line), nothing panics,
//! nothing is silently dropped; `skip_bad` leaves bad items out and counts them.

mod dsfix;

use std::path::Path;

use dgl_data::datasets::{
    open_cremad, open_ks, open_vggsound, AvDigits, AvDigitsOptions, ClipOptions, GenericDataset, GenericOptions,
    ProblemKind,
};
use dgl_data::{Dataset, Mode, Split};
use dsfix::*;

/// Asserts that `err` names `file` (its path or its name) and, when given, `file:line`.
fn names(err: &str, file: &Path, line: Option<usize>) {
    if std::env::var_os("DGL_SHOW_ERRORS").is_some() {
        println!("ERR {err}");
    }
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name), "error does not name {name}: {err}");
    if let Some(l) = line {
        assert!(err.contains(&format!("{}:{l}:", file.display())), "error does not name {}:{l}: {err}", file.display());
    }
}

fn cremad_err(root: &Path, split: Split, opts: &ClipOptions) -> String {
    match open_cremad(&cremad(root, opts.clone()), split) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// CREMA-D fixture whose train clip 0 (NEU) has its WAV replaced by `bytes`; returns the error of
/// reading it, after checking that `verify` + `skip_bad` counts it as corrupt.
fn bad_wav_case(tag: &str, bytes: &[u8]) -> String {
    let t = TempDir::new(tag);
    let ids = cremad_tree(t.path(), 6, 1);
    let wav = t.path().join("AudioWAV").join(format!("{}.wav", ids[0]));
    write(&wav, bytes);
    let err = if bytes.is_empty() {
        // Zero-length files are caught when opening.
        cremad_err(t.path(), Split::Train, &fast_opts())
    } else {
        let ds = open_cremad(&cremad(t.path(), fast_opts()), Split::Train).unwrap();
        let e = ds.get(0, Mode::Eval).unwrap_err().to_string();
        // verify finds it at open time too.
        let v = cremad_err(t.path(), Split::Train, &ClipOptions { verify: true, ..fast_opts() });
        names(&v, &wav, None);
        e
    };
    names(&err, &wav, None);
    let o = ClipOptions { verify: true, skip_bad: true, ..fast_opts() };
    let ds = open_cremad(&cremad(t.path(), o.clone()), Split::Train).unwrap();
    assert_eq!(ds.len(), 5);
    let r = ds.report();
    assert_eq!(r.class_counts(Split::Train, 0).corrupt, 1);
    assert_eq!(r.counts(Split::Train).ok, 5);
    assert_eq!(r.problems[0].kind, ProblemKind::Corrupt);
    assert_eq!(r.problems[0].item, ids[0]);
    err
}

#[test]
fn truncated_wav() {
    let full = wav_pcm16(16000, &tone(16000, 0.1, 440.0));
    let e = bad_wav_case("trunc", &full[..full.len() - 1000]);
    assert!(e.contains("truncated") || e.contains("ends early"), "{e}");
}

#[test]
fn zero_length_wav() {
    let e = bad_wav_case("zero", b"");
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn non_audio_file() {
    bad_wav_case("text", b"this is not audio, just some text pretending to be a wav file\n");
}

#[test]
fn wrong_header_wav() {
    let mut b = wav_pcm16(16000, &tone(16000, 0.1, 440.0));
    b[8..12].copy_from_slice(b"WAVX");
    bad_wav_case("hdr", &b);
}

#[test]
fn unsupported_codec_wav() {
    // Format tag 0x0161 (WMA) is not decoded.
    let e = bad_wav_case("codec", &wav_raw(0x0161, 1, 16000, 16, &[0u8; 512]));
    assert!(e.contains("unsupported") || e.contains("codec") || e.contains("Unsupported"), "{e}");
}

#[test]
fn corrupt_jpeg_frame() {
    let t = TempDir::new("jpeg");
    let ids = cremad_tree(t.path(), 6, 1);
    // 1 frame, evenly spaced → the middle one of three.
    let frame = t.path().join("Image-01-FPS").join(&ids[1]).join("00001.jpg");
    let mut j = jpeg(20, 16, [1, 2, 3]);
    j.truncate(j.len() / 3);
    write(&frame, &j);
    // Its header no longer reads: found when opening (every frame's header is checked).
    names(&cremad_err(t.path(), Split::Train, &fast_opts()), &frame, None);
    // Broken after opening: an error naming it when read.
    write(&frame, &jpeg(20, 16, [1, 2, 3]));
    let ds = open_cremad(&cremad(t.path(), fast_opts()), Split::Train).unwrap();
    write(&frame, &j);
    names(&ds.get(1, Mode::Eval).unwrap_err().to_string(), &frame, None);
    write(&frame, b"\xff\xd8\xff garbage that is not a jpeg");
    names(&ds.get(1, Mode::Eval).unwrap_err().to_string(), &frame, None);
    let o = ClipOptions { verify: true, skip_bad: true, ..fast_opts() };
    let ds = open_cremad(&cremad(t.path(), o.clone()), Split::Train).unwrap();
    assert_eq!((ds.len(), ds.report().class_counts(Split::Train, 1).corrupt), (5, 1));
}

#[test]
fn missing_and_empty_frame_folders_and_audio() {
    let t = TempDir::new("missing");
    let ids = cremad_tree(t.path(), 6, 1);
    let dir = t.path().join("Image-01-FPS").join(&ids[2]);
    std::fs::remove_dir_all(&dir).unwrap();
    names(&cremad_err(t.path(), Split::Train, &fast_opts()), &dir, None);
    // An empty folder (or one without images) is missing too.
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir.join("notes.txt"), b"x");
    let e = cremad_err(t.path(), Split::Train, &fast_opts());
    names(&e, &dir, None);
    assert!(e.contains("no frames"), "{e}");
    let wav = t.path().join("AudioWAV").join(format!("{}.wav", ids[4]));
    std::fs::remove_file(&wav).unwrap();
    let o = ClipOptions { skip_bad: true, ..fast_opts() };
    let ds = open_cremad(&cremad(t.path(), o.clone()), Split::Train).unwrap();
    assert_eq!(ds.len(), 4);
    let r = ds.report();
    assert_eq!((r.class_counts(Split::Train, 2).missing, r.class_counts(Split::Train, 4).missing), (1, 1));
    assert_eq!(r.counts(Split::Train), dgl_data::datasets::Counts { ok: 4, missing: 2, corrupt: 0 });
    assert!(r.problems.iter().any(|p| p.message.contains(&*wav.to_string_lossy())));
    assert!(r.to_string().contains("2 missing"), "{r}");
}

#[test]
fn csv_rows_unknown_label_duplicate_id_wrong_columns() {
    let t = TempDir::new("csv");
    let ids = cremad_tree(t.path(), 6, 1);
    let csv = t.path().join("train.csv");
    let good = std::fs::read_to_string(&csv).unwrap();
    for (text, line, what) in [
        (format!("{good}x_clip,XYZ\n"), 7, "unknown emotion"),
        (format!("{good}{},NEU\n", ids[0]), 7, "duplicate"),
        (format!("{}a,b,c\n{good}", ""), 1, "expected 2 columns"),
        (format!("{good}lonely\n"), 7, "expected 2 columns"),
        (format!("{good}\"unterminated,NEU\n"), 7, "unterminated"),
        (format!("{good}../escape,NEU\n"), 7, "file name"),
    ] {
        write(&csv, text.as_bytes());
        let e = cremad_err(t.path(), Split::Train, &fast_opts());
        names(&e, &csv, Some(line));
        assert!(e.contains(what), "{e}");
    }
    // Rows are never skipped, even with skip_bad: the manifest itself is wrong.
    write(&csv, format!("{good}x_clip,XYZ\n").as_bytes());
    let e = cremad_err(t.path(), Split::Train, &ClipOptions { skip_bad: true, ..fast_opts() });
    names(&e, &csv, Some(7));
    std::fs::remove_file(&csv).unwrap();
    names(&cremad_err(t.path(), Split::Train, &fast_opts()), &csv, None);
}

#[test]
fn vggsound_csv_errors() {
    let t = TempDir::new("vggcsv");
    let good = vgg_tree(t.path());
    let csv = t.path().join("vggsound.csv");
    for (text, line, what) in [
        (format!("{good}zz,1,\"never in train\",test\n"), 7, "never appears in a train row"),
        (format!("{good}yt0-0_0,0,a,train\n"), 7, "duplicate"),
        (format!("{good}zz,1,a\n"), 7, "expected 4 columns"),
        (format!("{good}zz,1.5,a,train\n"), 7, "whole number"),
        (format!("{good}zz,1,a,val\n"), 7, "neither train nor test"),
    ] {
        write(&csv, text.as_bytes());
        let e = match open_vggsound(&vgg(t.path(), fast_opts()), Split::Train) {
            Ok(_) => panic!("expected an error for {what}"),
            Err(e) => e.to_string(),
        };
        names(&e, &csv, Some(line));
        assert!(e.contains(what), "{e}");
    }
    // Missing clip: error, or counted with skip_bad.
    write(&csv, good.as_bytes());
    let wav = t.path().join("audio/test-audios/test-set/yt5-1_0_000001.wav");
    std::fs::remove_file(&wav).unwrap();
    let e = open_vggsound(&vgg(t.path(), fast_opts()), Split::Test).err().unwrap().to_string();
    names(&e, &wav, None);
    let ds = open_vggsound(&vgg(t.path(), ClipOptions { skip_bad: true, ..fast_opts() }), Split::Test).unwrap();
    assert_eq!((ds.len(), ds.report().class_counts(Split::Test, 1).missing), (1, 1));
}

#[test]
fn ks_class_list_disagreements_and_unpaired_clips() {
    let t = TempDir::new("kscls");
    ks_tree(t.path(), 2);
    let list = t.path().join("class.txt");
    // A folder not in the list.
    write(&list, b"playing bass guitar,dog barking\n");
    let e = open_ks(&ks(t.path(), fast_opts()), Split::Train).err().unwrap().to_string();
    names(&e, &list, None);
    assert!(e.contains("tapping_pen"), "{e}");
    // A listed class without folders.
    write(&list, b"playing bass guitar,dog barking,tapping pen,cat purring\n");
    let e = open_ks(&ks(t.path(), fast_opts()), Split::Train).err().unwrap().to_string();
    names(&e, &list, None);
    assert!(e.contains("cat_purring"), "{e}");
    // Duplicates in the list.
    write(&list, b"dog barking\ndog barking\n");
    names(&open_ks(&ks(t.path(), fast_opts()), Split::Train).err().unwrap().to_string(), &list, Some(2));
    std::fs::remove_file(&list).unwrap();
    names(&open_ks(&ks(t.path(), fast_opts()), Split::Train).err().unwrap().to_string(), &list, None);
    write(&list, KS_CLASSES.join(",").as_bytes());

    // Audio without frames, frames without audio: missing items, never misaligned pairs.
    let wav = t.path().join("audio/train/dog_barking/train1v0.wav");
    std::fs::remove_file(&wav).unwrap();
    let frames = t.path().join("visual/train_img/Image-01-FPS/tapping_pen/train2v1");
    std::fs::remove_dir_all(&frames).unwrap();
    let e = open_ks(&ks(t.path(), fast_opts()), Split::Train).err().unwrap().to_string();
    names(&e, &wav, None);
    let ds = open_ks(&ks(t.path(), ClipOptions { skip_bad: true, ..fast_opts() }), Split::Train).unwrap();
    assert_eq!(ds.len(), 4);
    let r = ds.report();
    assert_eq!((r.class_counts(Split::Train, 1).missing, r.class_counts(Split::Train, 2).missing), (1, 1));
    assert!(r.problems.iter().any(|p| p.message.contains("train2v1")));
    for it in ds.items() {
        assert_eq!(it.audio.file_stem().unwrap(), it.frames[0].parent().unwrap().file_name().unwrap());
    }
    // A stray non-wav file in an audio class folder is reported, not ignored.
    let stray = t.path().join("audio/train/dog_barking/readme.txt");
    write(&stray, b"x");
    let e =
        open_ks(&ks(t.path(), ClipOptions { skip_bad: false, ..fast_opts() }), Split::Train).err().unwrap().to_string();
    assert!(e.contains("train1v0") || e.contains("readme.txt"), "{e}");
    let ds = open_ks(&ks(t.path(), ClipOptions { skip_bad: true, ..fast_opts() }), Split::Train).unwrap();
    assert!(ds.report().problems.iter().any(|p| p.message.contains("readme.txt")));
}

/// The error opening the training split of a generic dataset.
fn open_err(o: &GenericOptions) -> String {
    GenericDataset::open(o, Split::Train).err().unwrap().to_string()
}

#[test]
fn generic_nan_inf_shapes_missing_labels() {
    let t = TempDir::new("gbad");
    generic_per_modality(t.path());
    let root = t.path();
    let o = GenericOptions::new(root);
    let open_err = || open_err(&o);
    // NaN / Inf values: errors naming the file when read.
    let f = root.join("features/a/n1.npy");
    dgl_data::datasets::npy::write_npy_f32(&f, &[3], &[1.0, f32::NAN, 2.0]).unwrap();
    let ds = GenericDataset::open(&o, Split::Train).unwrap();
    let e = ds.get(1, Mode::Eval).unwrap_err().to_string();
    names(&e, &f, None);
    assert!(e.contains("NaN"), "{e}");
    dgl_data::datasets::npy::write_npy_f32(&f, &[3], &[1.0, f32::INFINITY, 2.0]).unwrap();
    assert!(ds.get(1, Mode::Eval).unwrap_err().to_string().contains("inf"));
    let v = GenericDataset::open(&GenericOptions { verify: true, skip_bad: true, ..o.clone() }, Split::Train).unwrap();
    assert_eq!((v.len(), v.report().class_counts(Split::Train, 1).corrupt), (3, 1));
    // Wrong shape: caught when opening.
    dgl_data::datasets::npy::write_npy_f32(&f, &[4], &[1.0; 4]).unwrap();
    let e = open_err();
    names(&e, &f, None);
    assert!(e.contains("shape"), "{e}");
    // Broken npy header, zero-length file.
    write(&f, b"\x93NUMPY\x01\x00\x10\x00{'descr': '|O'}\n");
    names(&open_err(), &f, None);
    write(&f, b"");
    names(&open_err(), &f, None);
    // Missing file.
    std::fs::remove_file(&f).unwrap();
    names(&open_err(), &f, None);
    let s = GenericDataset::open(&GenericOptions { skip_bad: true, ..o.clone() }, Split::Train).unwrap();
    assert_eq!((s.len(), s.report().counts(Split::Train).missing), (3, 1));

    // Manifest problems.
    let m = root.join("manifest.csv");
    let good = std::fs::read_to_string(&m).unwrap();
    for (text, line, what) in [
        (good.replacen("train,n2,2", "train,n2,cat", 1), 4, "give a class list to mix them"),
        (format!("{good}train,n0,1\n"), 8, "duplicate"),
        (format!("{good}train,n9\n"), 8, "expected 3 columns"),
        (format!("{good}dev,n9,1\n"), 8, "neither train nor test"),
        (good.replacen("split,id,label", "split,id,lbl", 1), 1, "header"),
    ] {
        write(&m, text.as_bytes());
        let e = open_err();
        names(&e, &m, Some(line));
        assert!(e.contains(what), "{e}");
    }
    write(&m, good.as_bytes());
    // A class list that disagrees with the labels.
    let cls = root.join("classes.txt");
    write(&cls, b"x\ny\n");
    let e = open_err();
    names(&e, &m, Some(4));
    assert!(e.contains("out of range") && e.contains("classes.txt"), "{e}");
}

#[test]
fn generic_safetensors_hostile() {
    let t = TempDir::new("gst");
    generic_per_sample(t.path());
    let f = t.path().join("features/s2.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    let o = GenericOptions::new(t.path());
    for bad in [
        bytes[..bytes.len() - 3].to_vec(),
        [bytes.clone(), vec![1, 2]].concat(),
        b"\xff\xff\xff\xff\xff\xff\xff\x7f".to_vec(),
        b"{}".to_vec(),
    ] {
        write(&f, &bad);
        names(&open_err(&o), &f, None);
    }
    // Missing a modality / wrong dtype / NaN.
    use dgl_data::datasets::tensorfile::{write_safetensors, WriteTensor};
    write_safetensors(&f, &[WriteTensor::F32("audio", vec![2, 3], &[0.0; 6])], None).unwrap();
    names(&open_err(&o), &f, None);
    write_safetensors(
        &f,
        &[WriteTensor::F32("audio", vec![2, 3], &[0.0; 6]), WriteTensor::U32("visual", vec![4], &[1; 4])],
        None,
    )
    .unwrap();
    assert!(GenericDataset::open(&o, Split::Train).is_ok());
    let nan = [0.0, 0.0, f32::NAN, 0.0];
    write_safetensors(
        &f,
        &[WriteTensor::F32("audio", vec![2, 3], &[0.0; 6]), WriteTensor::F32("visual", vec![4], &nan)],
        None,
    )
    .unwrap();
    let ds = GenericDataset::open(&o, Split::Train).unwrap();
    let e = ds.get(2, Mode::Eval).unwrap_err().to_string();
    names(&e, &f, None);
    assert!(e.contains("visual"), "{e}");
}

#[test]
fn avdigits_hostile() {
    let t = TempDir::new("avdbad");
    avdigits_tree(t.path(), 2, 6);
    let o = AvDigitsOptions::default();
    // A recording whose name does not parse.
    let odd = t.path().join("fsdd/recordings/seven_a_1.wav");
    write(&odd, &wav_pcm16(8000, &tone(8000, 0.2, 300.0)));
    names(&AvDigits::open(t.path(), Split::Train, &o, false, false).err().unwrap().to_string(), &odd, None);
    let d = AvDigits::open(t.path(), Split::Train, &o, true, false).unwrap();
    assert_eq!((d.len(), d.report().counts(Split::Train).corrupt), (4, 1));
    std::fs::remove_file(&odd).unwrap();
    // A corrupt recording: error when read; counted with verify + skip_bad.
    let wav = t.path().join("fsdd/recordings/1_b_5.wav");
    write(&wav, b"RIFF....WAVEfmt nonsense");
    let d = AvDigits::open(t.path(), Split::Train, &o, false, false).unwrap();
    let i = d.items().iter().position(|it| it.audio == wav).unwrap();
    names(&d.get(i, Mode::Eval).unwrap_err().to_string(), &wav, None);
    let d = AvDigits::open(t.path(), Split::Train, &o, true, true).unwrap();
    assert_eq!((d.len(), d.report().class_counts(Split::Train, 1).corrupt), (3, 1));
    std::fs::remove_file(&wav).unwrap();
    // Broken MNIST files.
    let img = t.path().join("mnist/train-images-idx3-ubyte.gz");
    let good = std::fs::read(&img).unwrap();
    for bad in [good[..good.len() / 2].to_vec(), gz(&mnist_idx(3).0[..100]), gz(b"\0\0\x08\x01\0\0\0\0"), vec![]] {
        write(&img, &bad);
        names(&AvDigits::open(t.path(), Split::Train, &o, false, false).err().unwrap().to_string(), &img, None);
    }
    write(&img, &good);
    let lab = t.path().join("mnist/train-labels-idx1-ubyte.gz");
    write(&lab, &gz(&mnist_idx(39).1));
    names(&AvDigits::open(t.path(), Split::Train, &o, false, false).err().unwrap().to_string(), &lab, None);
    std::fs::remove_file(&lab).unwrap();
    names(&AvDigits::open(t.path(), Split::Train, &o, false, false).err().unwrap().to_string(), &lab, None);
}

//! Hostile and absurd input, one test per class (issue #12): sizes are refused *before* anything is
//! allocated with the limit in the message, nothing panics, degenerate splits are refused, and
//! `verify` / `prepare` cover every file training can read.

mod dsfix;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dgl_data::datasets::{
    open_cremad, open_ks, AvDigits, AvDigitsOptions, ClipOptions, GenericDataset, GenericOptions,
};
use dgl_data::{audio, visual, Dataset, Mode, SpectrogramRecipe, Split, SyntheticAv, SyntheticConfig};
use dsfix::*;

/// Asserts that `err` names `file` (its file name) and contains every one of `parts`.
fn says(err: &str, file: Option<&Path>, parts: &[&str]) {
    if let Some(f) = file {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(err.contains(&*name), "error does not name {name}: {err}");
    }
    for p in parts {
        assert!(err.contains(p), "error does not say {p:?}: {err}");
    }
}

fn err<T>(r: dgl_data::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Runs `f` on another thread and fails (instead of hanging the suite) if it does not return
/// within a generous deadline: a read of a FIFO without a writer blocks forever.
fn without_hanging<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the call hung (it read a FIFO or device?)")
}

/// A 244-byte WAV whose header says 0xFFFFFFFF Hz: refused from its header, with the limit named,
/// before the resampler is asked for a filter table (222 GB with the old code).
#[test]
fn huge_wav_sample_rate_is_refused_with_the_limit() {
    let t = TempDir::new("rate");
    let bytes = wav_raw(1, 1, 0xFFFF_FFFF, 16, &[0u8; 200]);
    assert_eq!(bytes.len(), 244);
    let p = t.path().join("fast.wav");
    write(&p, &bytes);
    says(&err(audio::load(&p, Some(22050))), Some(&p), &["4294967295", "768000", "DGL_MAX_SAMPLE_RATE"]);
    // The resampler itself refuses such rates (anything that bypasses the decoder).
    says(&err(audio::resample(&[0.0; 16], u32::MAX, 22050)), None, &["768000", "DGL_MAX_SAMPLE_RATE"]);
    // Same through a dataset: an error naming the clip; verify + skip_bad counts it.
    let ids = cremad_tree(t.path(), 6, 1);
    let wav = t.path().join("AudioWAV").join(format!("{}.wav", ids[0]));
    write(&wav, &bytes);
    let ds = open_cremad(&cremad(t.path(), fast_opts()), Split::Train).unwrap();
    says(&err(ds.get(0, Mode::Eval)), Some(&wav), &["DGL_MAX_SAMPLE_RATE"]);
    let v = open_cremad(&cremad(t.path(), ClipOptions { verify: true, skip_bad: true, ..fast_opts() }), Split::Train)
        .unwrap();
    assert_eq!((v.len(), v.report().class_counts(Split::Train, 0).corrupt), (5, 1));
}

/// A zero sample rate (on which symphonia panics): an error naming the file, and no panic at all
/// (not even one caught inside the decoder, whose message would reach stderr).
#[test]
fn zero_sample_rate_wav_is_an_error_without_a_panic() {
    let me = std::thread::current().id();
    let panicked = Arc::new(AtomicBool::new(false));
    let flag = panicked.clone();
    let previous = Arc::new(Mutex::new(Some(std::panic::take_hook())));
    let prev = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            flag.store(true, Ordering::SeqCst);
        }
        if let Some(h) = prev.lock().unwrap().as_ref() {
            h(info);
        }
    }));
    let t = TempDir::new("rate0");
    let canonical = wav_raw(1, 1, 0, 16, &[1u8, 2, 3, 4, 5, 6, 7, 8]);
    // Not the fast path's layout (a LIST chunk before the data): straight to symphonia before.
    let mut listed = canonical[..36].to_vec();
    listed.extend_from_slice(b"LIST\x04\x00\x00\x00INFO");
    listed.extend_from_slice(&canonical[36..]);
    let len = (listed.len() - 8) as u32;
    listed[4..8].copy_from_slice(&len.to_le_bytes());
    let mut results = Vec::new();
    // The fuzzer's crash: a zero-rate WAV after two bytes of garbage (symphonia's probe skips them).
    let garbage =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz_wav_rate0_after_garbage.bin"))
            .unwrap();
    for (name, bytes) in [("zero.wav", canonical), ("zero_list.wav", listed), ("zero_garbage.wav", garbage)] {
        let p = t.path().join(name);
        write(&p, &bytes);
        results.push((p.clone(), audio::decode_file(&p)));
    }
    let _ = std::panic::take_hook();
    if let Some(h) = previous.lock().unwrap().take() {
        std::panic::set_hook(h);
    }
    assert!(!panicked.load(Ordering::SeqCst), "decoding a zero-rate WAV panicked (even if caught)");
    for (p, r) in results {
        says(&err(r), Some(&p), &["sample rate", "0 Hz"]);
    }
}

/// A manifest label of 4,000,000,000 (4e9 class names, 96 GB with the old code) and absurd class
/// counts are refused with the file, the line and the limit.
#[test]
fn huge_labels_and_class_counts_are_refused() {
    let t = TempDir::new("label");
    generic_per_modality(t.path());
    let m = t.path().join("manifest.csv");
    let good = std::fs::read_to_string(&m).unwrap();
    write(&m, good.replacen("train,n1,1", "train,n1,4000000000", 1).as_bytes());
    let e = err(GenericDataset::open(&generic(t.path()), Split::Train));
    says(&e, Some(&m), &[&format!("{}:3:", m.display()), "4000000000", "100000", "DGL_MAX_CLASSES"]);
    write(&m, good.as_bytes());
    let o = GenericOptions { num_classes: Some(50_000_000), ..generic(t.path()) };
    says(
        &err(GenericDataset::open(&GenericOptions { root: t.path().into(), ..o.clone() }, Split::Train)),
        None,
        &["num_classes", "DGL_MAX_CLASSES"],
    );
    // A label at or above num_classes names the line.
    write(&m, good.replacen("train,n1,1", "train,n1,7", 1).as_bytes());
    let o = GenericOptions { num_classes: Some(5), ..generic(t.path()) };
    says(
        &err(GenericDataset::open(&GenericOptions { root: t.path().into(), ..o.clone() }, Split::Train)),
        Some(&m),
        &[&format!("{}:3:", m.display()), "7"],
    );
}

/// A 2 GiB file named `.wav` (sparse: costs nothing on disk) is refused from its size, without
/// being read, when the dataset is opened and when decoded directly.
#[test]
fn oversize_wav_is_refused_without_reading_it() {
    let t = TempDir::new("big");
    let ids = cremad_tree(t.path(), 6, 1);
    let wav = t.path().join("AudioWAV").join(format!("{}.wav", ids[0]));
    let f = std::fs::OpenOptions::new().write(true).open(&wav).unwrap();
    f.set_len(2 << 30).unwrap();
    drop(f);
    says(&err(audio::decode_file(&wav)), Some(&wav), &["2147483648", "1073741824", "DGL_MAX_FILE_BYTES"]);
    says(&err(open_cremad(&cremad(t.path(), fast_opts()), Split::Train)), Some(&wav), &["DGL_MAX_FILE_BYTES"]);
    let s = open_cremad(&cremad(t.path(), ClipOptions { skip_bad: true, ..fast_opts() }), Split::Train).unwrap();
    assert_eq!((s.len(), s.report().class_counts(Split::Train, 0).corrupt), (5, 1));
}

/// An IDX header announcing far more data than the file holds (or than the limit) is refused from
/// the header, naming the limit; the data is never read.
#[test]
fn idx_header_lying_about_sizes_is_refused() {
    let t = TempDir::new("idx");
    avdigits_tree(t.path(), 2, 6);
    let dir = t.path().join("mnist");
    std::fs::remove_file(dir.join("train-images-idx3-ubyte.gz")).unwrap();
    let plain = dir.join("train-images-idx3-ubyte");
    let mut b = vec![0, 0, 8, 3];
    for v in [0xFFFF_FFFFu32, 28, 28] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&[0u8; 784]);
    write(&plain, &b);
    let o = AvDigitsOptions::default();
    let e = err(AvDigits::open(t.path(), Split::Train, &o, false, false));
    says(&e, Some(&plain), &["IDX header", "DGL_MAX_IDX_BYTES"]);
    // Within the limit but longer than the file: refused from the header too.
    b[4..8].copy_from_slice(&1000u32.to_be_bytes());
    write(&plain, &b);
    says(&err(AvDigits::open(t.path(), Split::Train, &o, false, false)), Some(&plain), &["announces", "784016"]);
}

/// A FIFO (which blocks a reader forever) and a device are refused by name, not read: as a
/// manifest, a class list, a WAV, a frame.
#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_not_read() {
    let t = TempDir::new("fifo");
    let ids = cremad_tree(t.path(), 6, 1);
    let mkfifo = |p: &Path| {
        std::fs::remove_file(p).ok();
        let ok = std::process::Command::new("mkfifo").arg(p).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "mkfifo {} failed", p.display());
    };
    let csv = t.path().join("train.csv");
    let kept = std::fs::read(&csv).unwrap();
    mkfifo(&csv);
    let root = t.path().to_path_buf();
    let e = without_hanging(move || err(open_cremad(&cremad(&root, fast_opts()), Split::Train)));
    says(&e, Some(&csv), &["not a regular file"]);
    std::fs::remove_file(&csv).unwrap(); // writing to the FIFO would block
    write(&csv, &kept);
    for p in [
        t.path().join("AudioWAV").join(format!("{}.wav", ids[1])),
        t.path().join("Image-01-FPS").join(&ids[2]).join("00000.jpg"),
    ] {
        let original = std::fs::read(&p).unwrap();
        mkfifo(&p);
        let root = t.path().to_path_buf();
        let e = without_hanging(move || err(open_cremad(&cremad(&root, fast_opts()), Split::Train)));
        says(&e, Some(&p), &["not a regular file"]);
        let q = p.clone();
        let e = without_hanging(move || {
            if q.extension().is_some_and(|x| x == "wav") {
                err(audio::decode_file(&q))
            } else {
                err(visual::load_rgb(&q))
            }
        });
        says(&e, Some(&p), &["not a regular file"]);
        std::fs::remove_file(&p).unwrap();
        write(&p, &original);
    }
    // /dev/zero as a manifest would grow without bound.
    if Path::new("/dev/zero").exists() {
        let g = TempDir::new("devzero");
        generic_per_modality(g.path());
        let o = GenericOptions { manifest: Some("/dev/zero".into()), ..generic(g.path()) };
        let e = without_hanging(move || err(GenericDataset::open(&o, Split::Train)));
        says(&e, Some(Path::new("/dev/zero")), &["not a regular file"]);
    }
}

/// A small PNG whose IHDR says 22000 × 22000 (1.9 GB per decoded frame) is refused from its header,
/// with the limit named, when decoded and already when the dataset is opened.
#[test]
fn huge_png_header_is_refused() {
    let mut b = png(2, 2, [10, 20, 30]);
    // IHDR: length at 8, "IHDR" at 12, width 16..20, height 20..24, CRC over 12..29 at 29..33.
    b[16..20].copy_from_slice(&22000u32.to_be_bytes());
    b[20..24].copy_from_slice(&22000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    let sum = crc.sum();
    b[29..33].copy_from_slice(&sum.to_be_bytes());
    let p = Path::new("huge.png");
    says(&err(visual::decode_rgb(&b, p)), Some(p), &["22000 × 22000", "DGL_MAX_IMAGE_PIXELS"]);
    let t = TempDir::new("png");
    let ids = cremad_tree(t.path(), 6, 1);
    let frame = t.path().join("Image-01-FPS").join(&ids[3]).join("00000.jpg");
    write(&frame, &b);
    says(&err(open_cremad(&cremad(t.path(), fast_opts()), Split::Train)), Some(&frame), &["DGL_MAX_IMAGE_PIXELS"]);
    let s = open_cremad(&cremad(t.path(), ClipOptions { skip_bad: true, ..fast_opts() }), Split::Train).unwrap();
    assert_eq!((s.len(), s.report().class_counts(Split::Train, 3).corrupt), (5, 1));
}

/// `hop = 0`, `audio_max_start_s = 1e300` and absurd sizes: errors naming the key before any work
/// (the old code divided by zero, or overflowed, or allocated).
#[test]
fn absurd_options_are_refused_naming_the_key() {
    let t = TempDir::new("opts");
    cremad_tree(t.path(), 6, 1);
    let recipe = |f: &dyn Fn(&mut SpectrogramRecipe)| {
        let mut r = SpectrogramRecipe::librosa_cremad();
        f(&mut r);
        ClipOptions { recipe: Some(r), ..fast_opts() }
    };
    // (options, what the error says, whether `ClipOptions::check` — before the dataset kind's
    // defaults are known — already catches it)
    let cases: Vec<(ClipOptions, &[&str], bool)> = vec![
        (recipe(&|r| r.hop = 0), &["recipe.hop"], true),
        (recipe(&|r| r.n_fft = 1 << 24), &["recipe.n_fft", "DGL_MAX_N_FFT"], true),
        (recipe(&|r| r.n_samples = 1 << 40), &["recipe.n_samples", "DGL_MAX_AUDIO_SAMPLES"], true),
        (recipe(&|r| r.sample_rate = 0), &["recipe.sample_rate"], true),
        (
            ClipOptions { audio_max_start_s: Some(1e300), ..fast_opts() },
            &["audio_max_start_s", "DGL_MAX_AUDIO_SAMPLES"],
            false,
        ),
        (ClipOptions { audio_max_start_s: Some(f64::NAN), ..fast_opts() }, &["audio_max_start_s"], true),
        (ClipOptions { frames: Some(1 << 30), ..fast_opts() }, &["frames", "DGL_MAX_FRAMES"], true),
        (ClipOptions { image_size: Some(1 << 20), ..fast_opts() }, &["image_size", "DGL_MAX_IMAGE_SIZE"], true),
        (ClipOptions { frames: Some(200), image_size: Some(4000), ..fast_opts() }, &["DGL_MAX_SAMPLE_VALUES"], false),
    ];
    for (o, parts, early) in cases {
        says(&err(open_cremad(&cremad(t.path(), o.clone()), Split::Train)), None, parts);
        if early {
            says(&err(o.check()), None, &parts[..1]);
        }
    }
    for (a, parts) in [
        (AvDigitsOptions { hop: 0, ..AvDigitsOptions::default() }, &["av_digits"][..]),
        (AvDigitsOptions { n_fft: 1 << 24, ..AvDigitsOptions::default() }, &["av_digits.n_fft", "DGL_MAX_N_FFT"]),
        (AvDigitsOptions { images_per_audio: 1 << 40, ..AvDigitsOptions::default() }, &["av_digits.images_per_audio"]),
        (AvDigitsOptions { sample_rate: u32::MAX, ..AvDigitsOptions::default() }, &["av_digits.sample_rate"]),
    ] {
        says(&err(AvDigits::open(t.path(), Split::Train, &a, false, false)), None, parts);
    }
    for (c, key) in [
        (SyntheticConfig { n_train: 1 << 40, ..SyntheticConfig::tiny() }, "n_train"),
        (SyntheticConfig { n_test: 1 << 40, ..SyntheticConfig::tiny() }, "n_test"),
        (SyntheticConfig { visual_noise: f64::NAN, ..SyntheticConfig::tiny() }, "visual_noise"),
        (SyntheticConfig { visual_contrast: [0.0, f64::INFINITY], ..SyntheticConfig::tiny() }, "visual_contrast"),
    ] {
        says(&err(SyntheticAv::new(c, Split::Train)), None, &[key]);
    }
}

/// A split without samples is refused: a manifest without test rows, an empty train.csv, a
/// split whose every item was left out, and `prepare` of an empty dataset (no cache is written).
#[test]
fn empty_splits_are_refused() {
    let t = TempDir::new("empty");
    generic_per_modality(t.path());
    let m = t.path().join("manifest.csv");
    let good = std::fs::read_to_string(&m).unwrap();
    let no_test: String = good.lines().filter(|l| !l.starts_with("test")).map(|l| format!("{l}\n")).collect();
    write(&m, no_test.as_bytes());
    says(&err(GenericDataset::open(&generic(t.path()), Split::Test)), Some(&m), &["no test rows"]);
    assert_eq!(GenericDataset::open(&generic(t.path()), Split::Train).unwrap().len(), 4);

    let c = TempDir::new("empty-cremad");
    let ids = cremad_tree(c.path(), 6, 1);
    let csv = c.path().join("train.csv");
    write(&csv, b"");
    says(&err(open_cremad(&cremad(c.path(), fast_opts()), Split::Train)), Some(&csv), &["no samples"]);
    // Every clip left out by skip_bad: refused, counting what was left out.
    write(&csv, format!("{},NEU\n", ids[0]).as_bytes());
    std::fs::remove_file(c.path().join("AudioWAV").join(format!("{}.wav", ids[0]))).unwrap();
    let e = err(open_cremad(&cremad(c.path(), ClipOptions { skip_bad: true, ..fast_opts() }), Split::Train));
    says(&e, Some(&csv), &["no samples", "1 missing"]);

    // prepare of an empty dataset: an error, and no cache.
    let g = GenericDataset::open(&generic(t.path()), Split::Train).unwrap();
    let inner: Box<dyn Dataset> = Box::new(g);
    let empty = dgl_data::Subset { inner, indices: vec![] };
    let out = t.path().join("cache");
    let r = dgl_data::prepare(&empty, Split::Train, &out, false, &|_, _| {});
    assert!(r.is_err(), "prepare accepted an empty split");
    assert!(!out.join("train").join("meta.json").exists());
    assert!(dgl_data::CachedDataset::open(&out, Split::Train).is_err());
}

/// The same clip in train and test is refused, naming the clip and both files and lines.
#[test]
fn same_clip_in_train_and_test_is_refused() {
    let t = TempDir::new("dup");
    let ids = cremad_tree(t.path(), 6, 2);
    let test_csv = t.path().join("test.csv");
    let mut text = std::fs::read_to_string(&test_csv).unwrap();
    text.push_str(&format!("{},NEU\r\n", ids[0]));
    write(&test_csv, text.as_bytes());
    let train_csv = t.path().join("train.csv");
    for split in [Split::Train, Split::Test] {
        let e = err(open_cremad(&cremad(t.path(), fast_opts()), split));
        says(&e, None, &[&ids[0], "train.csv:1", "test.csv:3"]);
        assert!(e.contains(&*train_csv.to_string_lossy()) || e.contains(&*test_csv.to_string_lossy()), "{e}");
    }
    // Kinetics-Sounds: a test clip copied into the train folders.
    let k = TempDir::new("dup-ks");
    ks_tree(k.path(), 2);
    let src = k.path().join("audio/test/dog_barking/test1v0.wav");
    let dst = k.path().join("audio/train/dog_barking/test1v0.wav");
    std::fs::copy(&src, &dst).unwrap();
    let vsrc = k.path().join("visual/val_img/Image-01-FPS/dog_barking/test1v0");
    let vdst = k.path().join("visual/train_img/Image-01-FPS/dog_barking/test1v0");
    write_frames(&vdst, 2);
    assert!(vsrc.exists());
    let o = ClipOptions { ..fast_opts() };
    for split in [Split::Train, Split::Test] {
        says(&err(open_ks(&ks(k.path(), o.clone()), split)), None, &["test1v0", "both the"]);
    }
    // Generic: one id per manifest, so a clip in both splits is a duplicate id (names both lines).
    let g = TempDir::new("dup-gen");
    generic_per_modality(g.path());
    let m = g.path().join("manifest.csv");
    let mut text = std::fs::read_to_string(&m).unwrap();
    text.push_str("test,n0,0\n");
    write(&m, text.as_bytes());
    says(&err(GenericDataset::open(&generic(g.path()), Split::Test)), Some(&m), &["duplicate", "line 2"]);
}

/// A PNG whose header reads but whose pixel data does not (its IDAT bytes are flipped, so the
/// chunk's CRC fails when decoding).
fn png_with_corrupt_data() -> Vec<u8> {
    let mut b = png(20, 16, [1, 2, 3]);
    let at = b.windows(4).position(|w| w == b"IDAT").expect("an IDAT chunk");
    let len = u32::from_be_bytes([b[at - 4], b[at - 3], b[at - 2], b[at - 1]]) as usize;
    for v in &mut b[at + 4..at + 4 + len] {
        *v ^= 0xFF;
    }
    b
}

/// A corrupt frame that the evaluation choice never reads (training may pick it): `verify` finds
/// it, `verify` + `skip_bad` leaves the clip out and counts it, and `prepare` refuses it (or, with
/// `skip_bad`, leaves it out) — so a run that opened the data cannot abort later on that frame.
#[test]
fn corrupt_other_frame_is_caught_by_verify_and_prepare() {
    let t = TempDir::new("frame2");
    let ids = cremad_tree(t.path(), 6, 1);
    // 3 frames, 1 used: evaluation reads the middle one (00001); training any of the three.
    let frame = t.path().join("Image-01-FPS").join(&ids[1]).join("00002.jpg");
    write(&frame, &png_with_corrupt_data());
    let plain = open_cremad(&cremad(t.path(), fast_opts()), Split::Train).unwrap();
    assert_eq!(plain.len(), 6);
    plain.get(1, Mode::Eval).unwrap();
    says(
        &err(open_cremad(&cremad(t.path(), ClipOptions { verify: true, ..fast_opts() }), Split::Train)),
        Some(&frame),
        &[],
    );
    let v = open_cremad(&cremad(t.path(), ClipOptions { verify: true, skip_bad: true, ..fast_opts() }), Split::Train)
        .unwrap();
    assert_eq!((v.len(), v.report().class_counts(Split::Train, 1).corrupt), (5, 1));
    assert!(v.report().problems[0].message.contains("00002.jpg"), "{}", v.report());
    let out = t.path().join("cache");
    let e = dgl_data::prepare(&plain, Split::Train, &out, false, &|_, _| {}).unwrap_err().to_string();
    assert!(e.contains("00002.jpg") && e.contains("1 corrupt"), "{e}");
    let r = dgl_data::prepare(&plain, Split::Train, &out, true, &|_, _| {}).unwrap();
    assert_eq!((r.counts(Split::Train).ok, r.counts(Split::Train).corrupt), (5, 1));
}

/// The fuzzer's out-of-memory inputs: a FLAC stream found by symphonia's marker scan after
/// garbage whose Vorbis comment announces 3.4 GB, and a FLAC picture block announcing 2.4 GB.
/// Refused from their metadata before symphonia allocates.
#[test]
fn flac_blocks_announcing_gigabytes_are_refused() {
    for file in ["fuzz_flac_comment_oom.bin", "fuzz_flac_picture_oom.bin"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
        let bytes = std::fs::read(&p).unwrap();
        let e = err(audio::decode_bytes(bytes, Path::new("oom.flac")));
        says(&e, Some(Path::new("oom.flac")), &["FLAC", "announces"]);
    }
}

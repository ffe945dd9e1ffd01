//! Hostile shapes and options against the `dgl` binary (issue #12, items 3, 4 and 6): inputs 1-2
//! pixels wide reaching the CPU convolution, non-UTF-8 arguments, absurd model and data sizes and
//! non-finite or degenerate options. Never a panic (exit 101, "panicked" on stderr): a valid
//! degenerate input trains, an invalid one is refused before any work with a message naming the
//! key (and the limit and how to raise it).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tmp;
use dgl_data::datasets::npy::write_npy_f32;
use dgl_data::fixtures;

fn dgl<S: AsRef<OsStr>>(args: &[S], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dgl"));
    c.args(args).env("RAYON_NUM_THREADS", "2").env("RUST_BACKTRACE", "1");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run dgl")
}

/// stdout + stderr of a run that must not have panicked nor printed a Rust backtrace (the
/// binary runs with `RUST_BACKTRACE=1`, under which a candle error's message carries one).
fn no_panic(o: &Output, what: &str) -> String {
    let err = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_ne!(o.status.code(), Some(101), "{what}: exit 101 (panic): {err}");
    assert!(!err.contains("panicked"), "{what}: a panic: {err}");
    assert!(!err.contains("stack backtrace") && !err.contains("rust_begin_unwind"), "{what}: a backtrace: {err}");
    assert!(!err.contains("candle_core::error"), "{what}: a backtrace in the message: {err}");
    err
}

/// A valid degenerate input trains to the end.
fn trains(o: &Output, what: &str) {
    let err = no_panic(o, what);
    assert_eq!(o.status.code(), Some(0), "{what}: {err}");
    assert!(err.contains("final (epoch 1)"), "{what}: {err}");
}

/// A refused input: exit 2, the message names every needle.
fn refused(o: &Output, what: &str, needles: &[&str]) {
    let err = no_panic(o, what);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: `{n}` not in: {err}");
    }
}

/// Writes `toml` to `<dir>.toml` and trains one epoch with it into `dir`.
fn train_with_config(dir: &Path, toml: &str, envs: &[(&str, &str)]) -> Output {
    let cfg = dir.with_extension("toml");
    std::fs::write(&cfg, toml).unwrap();
    let o = dgl(
        &[
            OsStr::new("train"),
            "--quiet".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--out".as_ref(),
            dir.as_os_str(),
        ],
        envs,
    );
    let _ = std::fs::remove_file(&cfg);
    o
}

/// A micro synthetic run (32 / 12 samples, width 2, one epoch of batches of 8).
const MICRO: &str = "[method]\nname = \"vanilla\"\n[data.dataset]\nn_train = 32\nn_test = 12\n\
                     [model]\nbase_width = 2\n[train]\nepochs = 1\nbatch_size = 8\ndiagnostics_every = 0\n";

/// A generic dataset of 8 train / 4 test samples: modality `a` of `shape_a`, `b` of shape (3,).
fn generic_tree(root: &Path, shape_a: &[usize]) {
    let mut manifest = String::from("id,label,split\n");
    for i in 0..12 {
        manifest.push_str(&format!("s{i},{},{}\n", i % 2, if i < 8 { "train" } else { "test" }));
        let n: usize = shape_a.iter().product();
        let a: Vec<f32> = (0..n).map(|j| (i + j) as f32 * 0.25 - 1.0).collect();
        let b = [i as f32 * 0.1, (i % 2) as f32, 1.0];
        for (m, shape, x) in [("a", shape_a, &a[..]), ("b", &[3][..], &b[..])] {
            let p = root.join("features").join(m).join(format!("s{i}.npy"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            write_npy_f32(&p, shape, x).unwrap();
        }
    }
    std::fs::write(root.join("manifest.csv"), manifest).unwrap();
}

fn generic_config(root: &Path, encoder_a: &str) -> String {
    format!(
        "[method]\nname = \"vanilla\"\n[data.dataset]\nkind = \"generic\"\nroot = \"{}\"\n[model]\nbase_width = 2\n\
         [[model.modalities]]\nname = \"a\"\nencoder = {{ kind = \"{encoder_a}\" }}\n\
         [[model.modalities]]\nname = \"b\"\nencoder = {{ kind = \"mlp\", hidden = [4] }}\n\
         [train]\nepochs = 1\nbatch_size = 4\ndiagnostics_every = 0\n",
        root.display()
    )
}

/// [`generic_config`] with an MLP encoder (hidden width 4) for both views.
fn mlp_generic_config(root: &Path) -> String {
    generic_config(root, "mlp").replace("kind = \"mlp\" }", "kind = \"mlp\", hidden = [4] }")
}

/// Generic features of shape (1, 1, 1) and frames of 1×2 pixels through the ResNet stem (7×7,
/// stride 2, padding 3): the CPU convolution indexed outside its buffer (exit 101). The trunk is
/// well defined on them (every stage 1×1, as in PyTorch), so they train.
#[test]
fn one_pixel_generic_features_train() {
    for (shape, encoder) in
        [(&[1, 1, 1][..], "resnet18_audio"), (&[2, 1, 2][..], "resnet18_audio"), (&[3, 1, 1, 2][..], "resnet18_visual")]
    {
        let root = tmp(&format!("hostile-generic-{}", shape.len()));
        generic_tree(&root, shape);
        let out = root.join("run");
        trains(&train_with_config(&out, &generic_config(&root, encoder), &[]), &format!("generic {shape:?}"));
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// An empty spatial dim is refused before training, naming the modality, its shape and the
/// trunk's minimum input.
#[test]
fn an_empty_feature_map_is_refused_naming_the_modality() {
    let root = tmp("hostile-generic-empty");
    generic_tree(&root, &[1, 4, 0]);
    let out = root.join("run");
    let o = train_with_config(&out, &generic_config(&root, "resnet18_audio"), &[]);
    let err = no_panic(&o, "generic (1, 4, 0)");
    assert_eq!(o.status.code(), Some(2), "{err}");
    // The loader may refuse the empty tensor itself; if it lets it through, the model must.
    if !err.contains("features/a") {
        for n in ["modality `a`", "[1, 4, 0]", "at least 1×1"] {
            assert!(err.contains(n), "`{n}` not in: {err}");
        }
    }
    assert!(!out.join("metrics.csv").exists(), "refused before training");
    let _ = std::fs::remove_dir_all(&root);
}

/// CREMA-D frames resized to `image_size = 1` (1×1 RGB frames through the visual ResNet).
#[test]
fn image_size_one_trains() {
    let root = tmp("hostile-cremad");
    fixtures::write_cremad_tree(&root, 12, 6).unwrap();
    let toml = format!(
        "[method]\nname = \"vanilla\"\n[data.dataset]\nkind = \"cremad\"\nroot = \"{}\"\nimage_size = 1\n\
         [model]\nbase_width = 2\n[train]\nepochs = 1\nbatch_size = 4\ndiagnostics_every = 0\n",
        root.display()
    );
    trains(&train_with_config(&root.join("run"), &toml, &[]), "cremad image_size = 1");
    let _ = std::fs::remove_dir_all(&root);
}

/// AV-digits with `hop` far larger than the clip (65536, the largest `DGL_MAX_N_FFT` allows): a
/// spectrogram one frame wide, (1, 65, 1).
#[test]
fn a_huge_hop_gives_a_one_frame_spectrogram_that_trains() {
    let root = tmp("hostile-avdigits");
    for d in 0..2 {
        for i in 0..8 {
            let x = fixtures::tone(8000, 0.3, 300.0 + 200.0 * d as f32);
            fixtures::write_file(
                &root.join("fsdd/recordings").join(format!("{d}_s_{i}.wav")),
                &fixtures::wav_pcm16(8000, &x),
            )
            .unwrap();
        }
    }
    for (prefix, n) in [("train", 40), ("t10k", 60)] {
        let (im, lb) = fixtures::mnist_idx(n);
        fixtures::write_file(&root.join("mnist").join(format!("{prefix}-images-idx3-ubyte")), &im).unwrap();
        fixtures::write_file(&root.join("mnist").join(format!("{prefix}-labels-idx1-ubyte")), &lb).unwrap();
    }
    let toml = format!(
        "[method]\nname = \"vanilla\"\n[data.dataset]\nkind = \"av-digits\"\nroot = \"{}\"\n\
         [data.dataset.av_digits]\nhop = 65536\n[model]\nbase_width = 2\n\
         [train]\nepochs = 1\nbatch_size = 4\ndiagnostics_every = 0\n",
        root.display()
    );
    trains(&train_with_config(&root.join("run"), &toml, &[]), "av-digits hop = 65536");
    let _ = std::fs::remove_dir_all(&root);
}

/// Arguments that are not UTF-8: a run directory and a configuration file whose names are not
/// (the command line recorded in environment.jsonl panicked in `std::env::args()`), and option
/// values that must be text.
#[test]
fn non_utf8_arguments_never_panic() {
    let base = tmp("hostile-argv");
    std::fs::create_dir_all(&base).unwrap();
    // Both the run directory and the configuration file (`<out>.toml`) have non-UTF-8 names.
    let out: PathBuf = base.join(OsStr::from_bytes(b"run-\xff\xfe"));
    let o = train_with_config(&out, MICRO, &[]);
    trains(&o, "--out <non-UTF-8>");
    let env = std::fs::read_to_string(out.join("environment.jsonl")).unwrap();
    assert!(env.contains("run-\u{fffd}\u{fffd}"), "the argument is recorded lossily: {env}");

    let bad = OsStr::from_bytes(b"\xff");
    for args in [
        vec![OsStr::new("train"), "--method".as_ref(), bad],
        vec![OsStr::new("train"), "--config".as_ref(), bad],
        vec![OsStr::new("train"), "--dataset".as_ref(), bad],
        vec![OsStr::new("plot"), bad],
        vec![OsStr::new("eval"), bad],
        vec![bad],
    ] {
        let o = dgl(&args, &[]);
        no_panic(&o, &format!("{args:?}"));
        assert_ne!(o.status.code(), Some(0), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Absurd model and data sizes are refused before anything is allocated, naming the key, the
/// limit and the variable that raises it; raising one limit meets the next (the parameter count).
#[test]
fn absurd_sizes_are_refused_with_the_limit() {
    let out = tmp("hostile-sizes");
    let with = |section: &str, line: &str| MICRO.replace(&format!("[{section}]\n"), &format!("[{section}]\n{line}\n"));
    for (toml, needles) in [
        (
            with("model", "base_width = 100000").replace("base_width = 2\n", ""),
            &["model.base_width", "100000", "512", "DGL_MAX_BASE_WIDTH"][..],
        ),
        (with("model", "frames = 1000000"), &["model.frames", "DGL_MAX_FRAMES"][..]),
        (
            with("data.dataset", "n_train = 1000000000").replace("n_train = 32\n", ""),
            &["n_train", "50000", "DGL_MAX_SYNTHETIC_SAMPLES"][..],
        ),
        (
            with("train", "batch_size = 1000000000").replace("batch_size = 8\n", ""),
            &["train.batch_size", "DGL_MAX_BATCH_SIZE"][..],
        ),
        (with("train", "epochs = 1000000000000").replace("epochs = 1\n", ""), &["train.epochs", "DGL_MAX_EPOCHS"][..]),
    ] {
        refused(&train_with_config(&out, &toml, &[]), &toml, needles);
        assert!(!out.exists(), "nothing written for {toml}");
    }
    let toml = with("model", "base_width = 100000").replace("base_width = 2\n", "");
    let o = train_with_config(&out, &toml, &[("DGL_MAX_BASE_WIDTH", "100000")]);
    refused(&o, "base_width 100000 with DGL_MAX_BASE_WIDTH=100000", &["model parameters", "DGL_MAX_MODEL_PARAMS"]);
    let _ = std::fs::remove_dir_all(&out);
}

/// Degenerate and non-finite options: SGD momentum ≥ 1, NaN / infinite values anywhere (the
/// optimizer, the method's sub-tables, the synthetic set), each refused naming the key.
#[test]
fn degenerate_and_non_finite_options_are_refused() {
    let out = tmp("hostile-options");
    for (extra, needles) in [
        ("[train.optimizer]\nmomentum = 1.0\n", &["momentum", "[0, 1)"][..]),
        ("[train.optimizer]\nlr = nan\n", &["train.optimizer.lr", "finite"][..]),
        ("[train.optimizer]\nbeta1 = inf\n", &["train.optimizer.beta1", "finite"][..]),
        ("[train.scheduler]\ngamma = nan\n", &["train.scheduler.gamma"][..]),
        ("[data]\nvalidation_fraction = nan\n", &["data.validation_fraction"][..]),
        ("[method]\nname = \"agm\"\nclip_threshold = inf\n", &["method.clip_threshold"][..]),
        ("[method]\nname = \"gblending-ogr\"\nogr_momentum = 1.0\n", &["momentum"][..]),
        ("[data.dataset]\nvisual_noise = nan\n", &["data.dataset.visual_noise"][..]),
    ] {
        // [data.dataset] is already a table of MICRO: add to it; [method] replaces MICRO's; the
        // others are new tables.
        let toml = match (extra.strip_prefix("[data.dataset]\n"), extra.strip_prefix("[method]\n")) {
            (Some(line), _) => MICRO.replace("[data.dataset]\n", &format!("[data.dataset]\n{line}")),
            (_, Some(method)) => MICRO.replace("[method]\nname = \"vanilla\"\n", &format!("[method]\n{method}")),
            _ => format!("{MICRO}{extra}"),
        };
        refused(&train_with_config(&out, &toml, &[]), extra, needles);
        assert!(!out.exists(), "nothing written for {extra}");
    }
    // The flags too.
    let o = dgl(&["train", "--out", out.to_str().unwrap(), "--lr", "NaN"], &[]);
    refused(&o, "--lr NaN", &["lr", "finite"]);
    let o = dgl(&["train", "--out", out.to_str().unwrap(), "--alpha", "inf"], &[]);
    refused(&o, "--alpha inf", &["alpha"]);
    assert!(!out.exists());
}

/// A batch too small for batch normalisation on the model's last map (the tiny synthetic frames
/// are 32×32, so layer 4 is 1×1 per sample): refused before training, naming the key; it was an
/// error in the first step, after the run directory was written, with a backtrace in the message.
#[test]
fn a_batch_of_one_on_one_by_one_maps_is_refused_before_training() {
    let out = tmp("hostile-batch1");
    let o = train_with_config(&out, &MICRO.replace("batch_size = 8", "batch_size = 1"), &[]);
    refused(&o, "batch_size = 1", &["train.batch_size = 1", "at least 2 samples"]);
    assert!(!out.join("config.toml").exists(), "refused before the run directory is written");
    // The last partial batch counts when drop_last is off: 32 = 3·10 + 2 is fine, 31 = 3·10 + 1 not.
    let toml =
        MICRO.replace("batch_size = 8", "batch_size = 10\ndrop_last = false").replace("n_train = 32", "n_train = 31");
    refused(&train_with_config(&out, &toml, &[]), "last batch of 1", &["batch of 1 sample", "drop_last = true"]);
    let _ = std::fs::remove_dir_all(&out);
}

/// `audio-only` on a generic dataset without an `audio` view: refused, naming the views (it trained
/// the alphabetically first view and reported it as audio).
#[test]
fn unimodal_baselines_train_the_modality_they_name() {
    let root = tmp("hostile-generic-unimodal");
    generic_tree(&root, &[3]);
    let base = mlp_generic_config(&root);
    // The former unimodal methods are refused with how to train a unimodal model now.
    let toml = base.replace("name = \"vanilla\"", "name = \"audio-only\"");
    refused(&train_with_config(&root.join("run"), &toml, &[]), "audio-only", &["audio-only", "--only audio"]);
    // `--only NAME` keeps the modality of that name; a name the model lacks is refused naming both.
    let cfg = root.join("base.toml");
    std::fs::write(&cfg, &base).unwrap();
    let only = |name: &str, out: &Path| {
        let args =
            ["train", "--quiet", "--config", cfg.to_str().unwrap(), "--only", name, "--out", out.to_str().unwrap()];
        dgl(&args.map(OsStr::new), &[])
    };
    refused(&only("audio", &root.join("run-audio")), "--only audio on views a, b", &["`audio`", "[\"a\", \"b\"]"]);
    let out = root.join("run-b");
    trains(&only("b", &out), "--only b");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(!metrics.contains("test_acc_a") && !metrics.contains("test_acc_b"), "one modality, no branches: {metrics}");
    let saved = dgl_cli::config::TrainConfig::from_toml_file(&out.join("config.toml")).unwrap();
    assert_eq!(saved.model.modalities.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["b"]);
    let _ = std::fs::remove_dir_all(&root);
}

/// A configuration listing a generic dataset's views in another order than the dataset's
/// (alphabetical) one trains, with the configuration's order (it was refused).
#[test]
fn model_modalities_in_any_order_of_the_views() {
    let root = tmp("hostile-generic-order");
    // Views of different widths (a: 5, b: 3), so batches in the wrong order could not pass the model.
    generic_tree(&root, &[5]);
    let toml = mlp_generic_config(&root)
        .replace("name = \"a\"", "name = \"TMP\"")
        .replace("name = \"b\"", "name = \"a\"")
        .replace("name = \"TMP\"", "name = \"b\"");
    let out = root.join("run");
    trains(&train_with_config(&out, &toml, &[]), "views listed as b, a");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("test_acc_a") && metrics.contains("test_acc_b"), "{metrics}");
    let _ = std::fs::remove_dir_all(&root);
}

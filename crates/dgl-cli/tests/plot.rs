//! `dgl_cli::plot`: figures of fake run directories are written as valid PNG and SVG, and missing
//! columns skip a figure instead of failing.

use std::fs;
use std::path::{Path, PathBuf};

use dgl_cli::plot::{plot_compare, plot_compare_report, plot_run, plot_run_report, PLOTS_DIR};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dgl-plot-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// A two-modality run as `dgl train` writes it: metrics.jsonl (with validation and one epoch whose
/// s is null) and steps.csv.
fn fake_multimodal_run(dir: &Path, dgl: bool) {
    let mut jsonl = String::new();
    for e in 1..=6 {
        let t = e as f64;
        let (mm, uni) = if dgl { (0.9 / t, 1.1 / t) } else { (1.2 / t, 0.0) };
        let s_mean = if e == 3 { "null".to_string() } else { format!("{}", 0.5 * t) };
        jsonl += &format!(
            concat!(
                "{{\"epoch\":{e},\"lr\":0.01,\"train_loss_mm\":{l},\"train_loss_audio\":{l},\"train_loss_visual\":{l},",
                "\"grad_norm\":3.5,\"s_mean_audio\":{sm},\"s_median_audio\":{smed},\"s_mean_visual\":{sv},",
                "\"s_median_visual\":{svm},\"grad_mm_audio\":{mm},\"grad_uni_audio\":{uni},\"grad_mm_visual\":{mmv},",
                "\"grad_uni_visual\":{univ},\"train_acc\":{acc},\"val_acc\":{vacc},\"val_acc_audio\":{vacc},",
                "\"val_acc_visual\":{vv},\"test_acc\":{acc},\"test_acc_audio\":{aa},\"test_acc_visual\":{vv},\"seconds\":1.5}}\n"
            ),
            e = e,
            l = 2.0 / t,
            sm = s_mean,
            smed = 0.9 / t,
            sv = 0.6 / t,
            svm = 0.004 * t,
            mm = mm,
            uni = uni,
            mmv = mm * 1.5,
            univ = uni * 1.2,
            acc = 0.4 + 0.05 * t,
            vacc = 0.38 + 0.05 * t,
            aa = 0.35 + 0.05 * t,
            vv = 0.15 + 0.02 * t,
        );
    }
    fs::write(dir.join("metrics.jsonl"), jsonl).unwrap();
    let mut steps = "step,epoch,grad_mm_audio,grad_uni_audio,grad_mm_visual,grad_uni_visual\n".to_string();
    for s in 0..60 {
        let v = 2.0 / (1.0 + s as f64);
        steps += &format!("{},{},{},{},{},{}\n", s * 10, s / 10, v, v * 1.1, v * 1.4, v * 1.3);
    }
    steps += "600,6,0.1"; // a line torn by a crash: skipped
    fs::write(dir.join("steps.csv"), steps).unwrap();
}

/// A unimodal run: no branches, no gradient sources, no s, no steps.csv.
fn fake_unimodal_run(dir: &Path) {
    let mut jsonl = String::new();
    for e in 1..=3 {
        jsonl += &format!(
            "{{\"epoch\":{e},\"lr\":0.01,\"train_loss_mm\":1.0,\"grad_norm\":2.0,\"train_acc\":0.5,\"test_acc\":{},\"seconds\":1.0}}\n",
            0.3 + 0.1 * e as f64
        );
    }
    fs::write(dir.join("metrics.jsonl"), jsonl).unwrap();
}

fn assert_png(path: &Path) {
    let bytes = fs::read(path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert!(img.width() >= 500 && img.height() >= 400, "{}: {}x{}", path.display(), img.width(), img.height());
    // Not blank: a white background with dark (text, axes) and coloured (series) pixels.
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
    let coloured = img.pixels().filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 80).count();
    assert!(dark > 500, "{}: only {dark} dark pixels (no text?)", path.display());
    assert!(coloured > 200, "{}: only {coloured} coloured pixels (no series?)", path.display());
}

fn assert_svg(path: &Path) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains("<svg"), "{} is not an SVG", path.display());
    assert!(text.contains("</svg>"), "{} is truncated", path.display());
    assert!(text.contains("<text"), "{} has no text", path.display());
}

fn assert_figures(written: &[PathBuf], dir: &Path, stems: &[&str]) {
    for stem in stems {
        let png = dir.join(format!("{stem}.png"));
        let svg = dir.join(format!("{stem}.svg"));
        assert!(written.contains(&png), "{} not reported in {written:?}", png.display());
        assert!(written.contains(&svg), "{} not reported in {written:?}", svg.display());
        assert_png(&png);
        assert_svg(&svg);
    }
    assert_eq!(written.len(), 2 * stems.len(), "{written:?}");
}

#[test]
fn plot_run_writes_every_figure_of_a_multimodal_run() {
    let run = temp_dir("mm");
    fake_multimodal_run(&run, true);
    let written = plot_run(&run).unwrap();
    let plots = run.join(PLOTS_DIR);
    assert_figures(&written, &plots, &["accuracy", "grad_sources_epoch", "grad_sources_step", "s_statistic"]);
    // The s axis spans several decades: logarithmic.
    assert!(fs::read_to_string(plots.join("s_statistic.svg")).unwrap().contains("(log)"));
    // Plotting again overwrites.
    let again = plot_run_report(&run).unwrap();
    assert_eq!(again.written, written);
    assert!(again.skipped.is_empty(), "{:?}", again.skipped);
    fs::remove_dir_all(&run).unwrap();
}

#[test]
fn plot_run_skips_figures_whose_columns_are_missing() {
    let run = temp_dir("uni");
    fake_unimodal_run(&run);
    let report = plot_run_report(&run).unwrap();
    assert_figures(&report.written, &run.join(PLOTS_DIR), &["accuracy"]);
    assert_eq!(report.skipped.len(), 3, "{:?}", report.skipped);
    for stem in ["grad_sources_epoch", "grad_sources_step", "s_statistic"] {
        assert!(report.skipped.iter().any(|s| s.starts_with(stem)), "{stem} not in {:?}", report.skipped);
        assert!(!run.join(PLOTS_DIR).join(format!("{stem}.png")).exists());
    }
    fs::remove_dir_all(&run).unwrap();
}

#[test]
fn plot_run_without_metrics_is_an_error() {
    let run = temp_dir("empty");
    let err = plot_run(&run).unwrap_err().to_string();
    assert!(err.contains("metrics.jsonl"), "{err}");
    fs::remove_dir_all(&run).unwrap();
}

#[test]
fn plot_run_reads_metrics_csv_when_there_is_no_jsonl() {
    let run = temp_dir("csv");
    fs::write(run.join("metrics.csv"), "epoch,lr,test_acc,test_acc_audio\n1,0.01,0.4,0.3\n2,0.01,0.5,0.45\n").unwrap();
    let written = plot_run(&run).unwrap();
    assert_figures(&written, &run.join(PLOTS_DIR), &["accuracy"]);
    fs::remove_dir_all(&run).unwrap();
}

#[test]
fn plot_compare_overlays_runs() {
    let root = temp_dir("cmp");
    let (dgl, vanilla, uni, out) = (root.join("dgl"), root.join("vanilla"), root.join("uni"), root.join("cmp"));
    for d in [&dgl, &vanilla, &uni] {
        fs::create_dir_all(d).unwrap();
    }
    fake_multimodal_run(&dgl, true);
    fake_multimodal_run(&vanilla, false);
    fake_unimodal_run(&uni);
    fs::remove_file(vanilla.join("steps.csv")).unwrap();
    let runs = [
        ("vanilla".to_string(), vanilla.as_path()),
        ("DGL".to_string(), dgl.as_path()),
        ("unimodal".to_string(), uni.as_path()),
    ];
    let written = plot_compare(&runs, &out).unwrap();
    assert_figures(
        &written,
        &out,
        &["compare_accuracy", "compare_grad_sources_epoch", "compare_grad_sources_step", "compare_s_statistic"],
    );
    let svg = fs::read_to_string(out.join("compare_accuracy.svg")).unwrap();
    for label in ["vanilla (test)", "DGL (test)", "unimodal (test)", "audio branch"] {
        assert!(svg.contains(label), "{label} missing from compare_accuracy.svg");
    }

    // Only unimodal runs: just the accuracy figure, the others skipped.
    let out2 = root.join("cmp2");
    let report =
        plot_compare_report(&[("a".to_string(), uni.as_path()), ("b".to_string(), uni.as_path())], &out2).unwrap();
    assert_figures(&report.written, &out2, &["compare_accuracy"]);
    assert_eq!(report.skipped.len(), 3, "{:?}", report.skipped);

    assert!(plot_compare(&[], &out2).is_err());
    fs::remove_dir_all(&root).unwrap();
}

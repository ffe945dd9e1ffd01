//! Plots of a run directory, and comparisons of several runs (`dgl plot`, `xtask`).
//!
//! The figures, each written as PNG and SVG (but `predictions`, PNG only):
//!
//! * `accuracy` — per-epoch test accuracy of the multimodal prediction and of every branch
//!   (`test_acc`, `test_acc_<branch>`), with the validation accuracy dashed when present.
//! * `grad_sources_epoch` / `grad_sources_step` — the gradient magnitude reaching each encoder from
//!   the multimodal loss (solid) vs from its unimodal loss (dashed), paper Fig. 1(c)/3(b), averaged
//!   per epoch (`grad_mm_<m>`, `grad_uni_<m>` of `metrics.jsonl`) and per logged step (`steps.csv`).
//! * `s_statistic` — the s statistic of each branch, paper Fig. 3(a) (`s_mean_<m>` solid,
//!   `s_median_<m>` dashed), on a logarithmic axis when the values span more than a decade or so.
//!
//! A figure whose columns are missing (a unimodal run, diagnostics switched off, no `steps.csv`) is
//! skipped, never an error: [`plot_run_report`] / [`plot_compare_report`] say which and why, and
//! [`plot_run`] / [`plot_compare`] print that on stderr.
//!
//! * `predictions` (segmentation runs, PNG only) — the first test images: inputs, ground truth, the
//!   multimodal prediction and each branch's, from the run's checkpoint ([`predictions`]).
//!
//! A segmentation run's `accuracy` figure is `miou` (its `test_miou` columns), `compare_accuracy`
//! likewise `compare_miou`.
//!
//! Text in the PNGs is drawn with DejaVu Sans embedded in the binary (`assets/`, Bitstream Vera
//! licence), so no system font is needed; the SVGs name the `sans-serif` family.

use std::fs;
use std::io::Cursor;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::chart::ChartContext;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{io_err, CliError, Result};
use crate::fsio::write_atomic;
use crate::run_dir::{read_metrics, Row, RunDir};

mod predictions;
pub use predictions::class_colour;

/// The sub-directory of a run that [`plot_run`] writes into.
pub const PLOTS_DIR: &str = RunDir::PLOTS;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

const PANEL_W: u32 = 560;
const CHART_H: u32 = 400;
const TITLE_LINE: u32 = 26;
/// Title font size; a title wider than the figure is wrapped at about 0.5 em per character.
const TITLE_PX: u32 = 19;
const LEGEND_ROW: u32 = 22;
const MAX_COLS: usize = 3;
/// Markers on the data points up to this many points per series.
const MAX_MARKERS: usize = 60;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// What a plotting call wrote, and which figures it skipped (with the reason).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlotReport {
    /// Every file written (PNG and SVG of each figure).
    pub written: Vec<PathBuf>,
    /// `"<figure>: <reason>"` for every figure that was not drawn.
    pub skipped: Vec<String>,
}

impl PlotReport {
    fn log_skipped(&self) {
        for s in &self.skipped {
            eprintln!("plot: skipped {s}");
        }
    }
}

/// Draws the figures of one run into `<run_dir>/plots/` and returns the files written. Figures
/// whose columns are missing are skipped with a note on stderr; see [`plot_run_report`].
pub fn plot_run(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let report = plot_run_report(run_dir)?;
    report.log_skipped();
    Ok(report.written)
}

/// Overlays several runs (`(label, run directory)`, e.g. plain vs DGL) in the same three figures,
/// written into `out_dir` as `compare_*.png` / `compare_*.svg`; returns the files written.
pub fn plot_compare(runs: &[(String, &Path)], out_dir: &Path) -> Result<Vec<PathBuf>> {
    let report = plot_compare_report(runs, out_dir)?;
    report.log_skipped();
    Ok(report.written)
}

/// [`plot_run`], returning the skipped figures instead of printing them.
pub fn plot_run_report(run_dir: &Path) -> Result<PlotReport> {
    let run = LoadedRun::load(run_dir, None)?;
    let figures = vec![run_accuracy(&run), run_grad_epoch(&run), run_grad_step(&run), run_s_statistic(&run)];
    let out_dir = run_dir.join(PLOTS_DIR);
    let mut report = render_all(figures, &out_dir)?;
    if run.score().key == MIOU.key {
        fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
        match predictions::draw(run_dir, &out_dir, &run.label)? {
            Ok(path) => report.written.push(path),
            Err(why) => report.skipped.push(why),
        }
    }
    Ok(report)
}

/// [`plot_compare`], returning the skipped figures instead of printing them.
pub fn plot_compare_report(runs: &[(String, &Path)], out_dir: &Path) -> Result<PlotReport> {
    if runs.is_empty() {
        return Err(CliError::Config("plot_compare: no runs to compare".into()));
    }
    let runs: Vec<LoadedRun> =
        runs.iter().map(|(label, dir)| LoadedRun::load(dir, Some(label.clone()))).collect::<Result<_>>()?;
    let figures = vec![
        compare_accuracy(&runs),
        compare_grad(&runs, false),
        compare_grad(&runs, true),
        compare_s_statistic(&runs),
    ];
    render_all(figures, out_dir)
}

// ---------------------------------------------------------------------------------------------
// Data

struct LoadedRun {
    label: String,
    dir: PathBuf,
    epochs: Vec<Row>,
    steps: Option<Vec<Row>>,
}

impl LoadedRun {
    fn load(dir: &Path, label: Option<String>) -> Result<Self> {
        let jsonl = dir.join(RunDir::METRICS_JSONL);
        let csv = dir.join(RunDir::METRICS_CSV);
        let epochs = if jsonl.is_file() {
            read_metrics(&jsonl)?
        } else if csv.is_file() {
            read_csv(&csv)?
        } else {
            return Err(CliError::Run(format!(
                "{}: no {} or {} to plot (is this a run directory?)",
                dir.display(),
                RunDir::METRICS_JSONL,
                RunDir::METRICS_CSV
            )));
        };
        let steps_path = dir.join(RunDir::STEPS_CSV);
        let steps = if steps_path.is_file() { Some(read_csv(&steps_path)?) } else { None };
        let label = label.unwrap_or_else(|| {
            let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
            abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
        });
        Ok(Self { label, dir: dir.to_path_buf(), epochs, steps })
    }

    fn steps(&self) -> &[Row] {
        self.steps.as_deref().unwrap_or(&[])
    }
}

/// A header line and rows of numbers; a row with the wrong number of fields (a line torn by a
/// crash) is skipped, a field that is not a number reads as NaN.
fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else { return Ok(Vec::new()) };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    Ok(lines
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            (fields.len() == names.len()).then(|| {
                Row(names
                    .iter()
                    .zip(fields)
                    .map(|(k, v)| (k.to_string(), v.trim().parse::<f64>().unwrap_or(f64::NAN)))
                    .collect())
            })
        })
        .collect())
}

/// Column names over all rows, in order of first appearance.
fn columns(rows: &[Row]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        for (k, _) in &r.0 {
            if !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// The suffixes `s` of the columns `<prefix>s` (e.g. the modalities of `grad_mm_`).
fn suffixes(cols: &[String], prefix: &str) -> Vec<String> {
    cols.iter().filter_map(|c| c.strip_prefix(prefix)).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// `(x, scale * y)` of the rows having both, finite.
fn points(rows: &[Row], x: &str, y: &str, scale: f64) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((r.get(x)?, scale * r.get(y)?)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect()
}

fn union(lists: impl IntoIterator<Item = Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lists {
        for s in l {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// Modalities having both `<a><m>` and `<b><m>` columns.
fn paired(cols: &[String], a: &str, b: &str) -> Vec<String> {
    suffixes(cols, a).into_iter().filter(|m| cols.iter().any(|c| c == &format!("{b}{m}"))).collect()
}

// ---------------------------------------------------------------------------------------------
// Figures

struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    dashed: bool,
}

struct Panel {
    title: String,
    series: Vec<Series>,
}

#[derive(Clone, Copy, PartialEq)]
enum YScale {
    /// Percentages, clamped to [0, 100].
    Percent,
    /// Logarithmic when every value is positive and they span more than [`LOG_RATIO`].
    Auto,
}

const LOG_RATIO: f64 = 20.0;

struct Figure {
    stem: &'static str,
    title: String,
    x_label: &'static str,
    y_label: &'static str,
    /// Epoch axis: integer labels only.
    integer_x: bool,
    y_scale: YScale,
    panels: Vec<Panel>,
}

type Built = std::result::Result<Figure, String>;

fn series(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize, dashed: bool) -> Option<Series> {
    (!points.is_empty()).then(|| Series { label: label.into(), points, color: PALETTE[color % PALETTE.len()], dashed })
}

fn finish(mut fig: Figure, reason: impl FnOnce() -> String) -> Built {
    fig.panels.retain(|p| !p.series.is_empty());
    if fig.panels.is_empty() {
        Err(format!("{}: {}", fig.stem, reason()))
    } else {
        Ok(fig)
    }
}

const GRAD_Y: &str = "Σ mean |∂L/∂θ| over the encoder";
const S_TITLE: &str = "s = exp((W_k − W_y)·z) of each branch (Fig. 3a): mean solid, median dashed";

fn grad_title(per_step: bool) -> String {
    format!(
        "Gradient reaching each encoder (Fig. 1c/3b), per {}: from L_mm solid, from its unimodal loss dashed",
        if per_step { "logged step" } else { "epoch" }
    )
}

/// The per-epoch score a run logs: accuracy (classification) or mIoU (segmentation, whose
/// `metrics.csv` has `test_miou` columns instead of `test_acc`).
struct Score {
    /// The column stem: `test_<key>`, `test_<key>_<branch>`, `val_<key>`.
    key: &'static str,
    stem: &'static str,
    compare_stem: &'static str,
    name: &'static str,
    title: &'static str,
}

const ACCURACY: Score = Score {
    key: "acc",
    stem: "accuracy",
    compare_stem: "compare_accuracy",
    name: "accuracy",
    title: "Test accuracy of each branch (validation dashed)",
};

const MIOU: Score = Score {
    key: "miou",
    stem: "miou",
    compare_stem: "compare_miou",
    name: "mIoU",
    title: "Test mIoU of each branch (validation dashed; a branch = the shared decoder, the other modality zeroed)",
};

impl LoadedRun {
    fn score(&self) -> &'static Score {
        let seg = columns(&self.epochs).iter().any(|c| c.starts_with("test_miou") || c.starts_with("val_miou"));
        if seg {
            &MIOU
        } else {
            &ACCURACY
        }
    }
}

fn run_accuracy(run: &LoadedRun) -> Built {
    let score = run.score();
    let key = score.key;
    let cols = columns(&run.epochs);
    let mut s = Vec::new();
    let mut add = |name: &str, suffix: &str, color: usize| {
        s.extend(series(
            format!("{name} (test)"),
            points(&run.epochs, "epoch", &format!("test_{key}{suffix}"), 100.0),
            color,
            false,
        ));
        s.extend(series(
            format!("{name} (val)"),
            points(&run.epochs, "epoch", &format!("val_{key}{suffix}"), 100.0),
            color,
            true,
        ));
    };
    add("multimodal", "", 0);
    let branches = union([suffixes(&cols, &format!("test_{key}_")), suffixes(&cols, &format!("val_{key}_"))]);
    for (i, b) in branches.iter().enumerate() {
        add(b, &format!("_{b}"), i + 1);
    }
    let fig = Figure {
        stem: score.stem,
        title: format!("{} — {}", run.label, score.title),
        x_label: "epoch",
        y_label: if key == "acc" { "accuracy (%)" } else { "mIoU (%)" },
        integer_x: true,
        y_scale: YScale::Percent,
        panels: vec![Panel { title: format!("multimodal and per-branch {}", score.name), series: s }],
    };
    finish(fig, || format!("no test_acc/val_acc columns in {}", run.dir.join(RunDir::METRICS_JSONL).display()))
}

fn grad_panels(rows: &[Row], x: &str, mods: &[String]) -> Vec<Panel> {
    mods.iter()
        .map(|m| Panel {
            title: format!("{m} encoder"),
            series: [
                series("from L_mm (multimodal)", points(rows, x, &format!("grad_mm_{m}"), 1.0), 0, false),
                series(format!("from L_{m} (unimodal)"), points(rows, x, &format!("grad_uni_{m}"), 1.0), 1, true),
            ]
            .into_iter()
            .flatten()
            .collect(),
        })
        .collect()
}

fn run_grad_epoch(run: &LoadedRun) -> Built {
    let mods = paired(&columns(&run.epochs), "grad_mm_", "grad_uni_");
    let fig = Figure {
        stem: "grad_sources_epoch",
        title: format!("{} — {}", run.label, grad_title(false)),
        x_label: "epoch",
        y_label: GRAD_Y,
        integer_x: true,
        y_scale: YScale::Auto,
        panels: grad_panels(&run.epochs, "epoch", &mods),
    };
    finish(fig, || "no grad_mm_<m>/grad_uni_<m> columns (unimodal run, or train.diagnostics_every = 0)".into())
}

fn run_grad_step(run: &LoadedRun) -> Built {
    let Some(steps) = &run.steps else {
        return Err(format!("grad_sources_step: no {} in {}", RunDir::STEPS_CSV, run.dir.display()));
    };
    let mods = paired(&columns(steps), "grad_mm_", "grad_uni_");
    let fig = Figure {
        stem: "grad_sources_step",
        title: format!("{} — {}", run.label, grad_title(true)),
        x_label: "training step",
        y_label: GRAD_Y,
        integer_x: false,
        y_scale: YScale::Auto,
        panels: grad_panels(steps, "step", &mods),
    };
    finish(fig, || format!("no step/grad_mm_<m>/grad_uni_<m> values in {}", run.dir.join(RunDir::STEPS_CSV).display()))
}

fn s_modalities(rows: &[Row]) -> Vec<String> {
    let cols = columns(rows);
    union([suffixes(&cols, "s_mean_"), suffixes(&cols, "s_median_")])
}

fn run_s_statistic(run: &LoadedRun) -> Built {
    let panels = s_modalities(&run.epochs)
        .iter()
        .enumerate()
        .map(|(i, m)| Panel {
            title: format!("{m} branch"),
            series: [
                series("mean s", points(&run.epochs, "epoch", &format!("s_mean_{m}"), 1.0), i, false),
                series("median s", points(&run.epochs, "epoch", &format!("s_median_{m}"), 1.0), i, true),
            ]
            .into_iter()
            .flatten()
            .collect(),
        })
        .collect();
    let fig = Figure {
        stem: "s_statistic",
        title: format!("{} — {S_TITLE}", run.label),
        x_label: "epoch",
        y_label: "s (over classes k ≠ y)",
        integer_x: true,
        y_scale: YScale::Auto,
        panels,
    };
    finish(fig, || "no s_mean_<m>/s_median_<m> columns (needs two modalities with linear heads)".into())
}

fn compare_accuracy(runs: &[LoadedRun]) -> Built {
    let score = runs[0].score();
    let key = score.key;
    let branches = union(runs.iter().map(|r| {
        let c = columns(&r.epochs);
        union([suffixes(&c, &format!("test_{key}_")), suffixes(&c, &format!("val_{key}_"))])
    }));
    let mut panels = Vec::new();
    for (title, suffix) in std::iter::once(("multimodal".to_string(), String::new()))
        .chain(branches.iter().map(|b| (format!("{b} branch"), format!("_{b}"))))
    {
        let mut s = Vec::new();
        for (i, r) in runs.iter().enumerate() {
            s.extend(series(
                format!("{} (test)", r.label),
                points(&r.epochs, "epoch", &format!("test_{key}{suffix}"), 100.0),
                i,
                false,
            ));
            s.extend(series(
                format!("{} (val)", r.label),
                points(&r.epochs, "epoch", &format!("val_{key}{suffix}"), 100.0),
                i,
                true,
            ));
        }
        panels.push(Panel { title, series: s });
    }
    let fig = Figure {
        stem: score.compare_stem,
        title: format!("{} — {}", labels(runs), score.title),
        x_label: "epoch",
        y_label: if key == "acc" { "accuracy (%)" } else { "mIoU (%)" },
        integer_x: true,
        y_scale: YScale::Percent,
        panels,
    };
    finish(fig, || "no run has test_acc/val_acc columns".into())
}

fn compare_grad(runs: &[LoadedRun], per_step: bool) -> Built {
    let rows = |r: &LoadedRun| if per_step { r.steps().to_vec() } else { r.epochs.clone() };
    let x = if per_step { "step" } else { "epoch" };
    let mods = union(runs.iter().map(|r| paired(&columns(&rows(r)), "grad_mm_", "grad_uni_")));
    let panels = mods
        .iter()
        .map(|m| {
            let mut s = Vec::new();
            for (i, r) in runs.iter().enumerate() {
                let rows = rows(r);
                s.extend(series(
                    format!("{}: from L_mm", r.label),
                    points(&rows, x, &format!("grad_mm_{m}"), 1.0),
                    i,
                    false,
                ));
                s.extend(series(
                    format!("{}: from L_{m}", r.label),
                    points(&rows, x, &format!("grad_uni_{m}"), 1.0),
                    i,
                    true,
                ));
            }
            Panel { title: format!("{m} encoder"), series: s }
        })
        .collect();
    let fig = Figure {
        stem: if per_step { "compare_grad_sources_step" } else { "compare_grad_sources_epoch" },
        title: format!("{} — {}", labels(runs), grad_title(per_step)),
        x_label: if per_step { "training step" } else { "epoch" },
        y_label: GRAD_Y,
        integer_x: !per_step,
        y_scale: YScale::Auto,
        panels,
    };
    finish(fig, || {
        if per_step && runs.iter().all(|r| r.steps.is_none()) {
            format!("no run has a {}", RunDir::STEPS_CSV)
        } else {
            "no run has grad_mm_<m>/grad_uni_<m> columns".into()
        }
    })
}

fn compare_s_statistic(runs: &[LoadedRun]) -> Built {
    let mods = union(runs.iter().map(|r| s_modalities(&r.epochs)));
    let panels = mods
        .iter()
        .map(|m| {
            let mut s = Vec::new();
            for (i, r) in runs.iter().enumerate() {
                s.extend(series(
                    format!("{}: mean", r.label),
                    points(&r.epochs, "epoch", &format!("s_mean_{m}"), 1.0),
                    i,
                    false,
                ));
                s.extend(series(
                    format!("{}: median", r.label),
                    points(&r.epochs, "epoch", &format!("s_median_{m}"), 1.0),
                    i,
                    true,
                ));
            }
            Panel { title: format!("{m} branch"), series: s }
        })
        .collect();
    let fig = Figure {
        stem: "compare_s_statistic",
        title: format!("{} — {S_TITLE}", labels(runs)),
        x_label: "epoch",
        y_label: "s (over classes k ≠ y)",
        integer_x: true,
        y_scale: YScale::Auto,
        panels,
    };
    finish(fig, || "no run has s_mean_<m>/s_median_<m> columns".into())
}

fn labels(runs: &[LoadedRun]) -> String {
    runs.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(" vs ")
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn render_all(figures: Vec<Built>, out_dir: &Path) -> Result<PlotReport> {
    register_font()?;
    let mut report = PlotReport::default();
    for fig in figures {
        match fig {
            Ok(fig) => {
                fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
                report.written.extend(render(&fig, out_dir)?);
            }
            Err(why) => report.skipped.push(why),
        }
    }
    Ok(report)
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(CliError::Run("plot: the embedded font could not be loaded".into()))
    }
}

fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, MAX_COLS);
    (n.div_ceil(cols), cols)
}

fn legend_cols(panel: &Panel) -> usize {
    if panel.series.len() > 1 {
        2
    } else {
        1
    }
}

fn legend_height(fig: &Figure) -> u32 {
    let rows = fig.panels.iter().map(|p| p.series.len().div_ceil(legend_cols(p))).max().unwrap_or(0);
    rows as u32 * LEGEND_ROW + 12
}

/// Greedy word wrap of the figure title to the figure's width.
fn title_lines(title: &str, width: u32) -> Vec<String> {
    let max_chars = ((width.saturating_sub(32)) as f64 / (TITLE_PX as f64 * 0.5)).max(20.0) as usize;
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in title.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > max_chars {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    lines.push(cur);
    lines
}

fn render(fig: &Figure, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let (rows, cols) = grid(fig.panels.len());
    let legend_h = legend_height(fig);
    let w = cols as u32 * PANEL_W;
    let title = title_lines(&fig.title, w);
    let title_h = 18 + title.len() as u32 * TITLE_LINE;
    let h = title_h + rows as u32 * (CHART_H + legend_h);
    let fail = |what: &str, e: String| CliError::Run(format!("plot {}.{what}: {e}", fig.stem));

    let png_path = out_dir.join(format!("{}.png", fig.stem));
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw_figure(&root, fig, &title, title_h).map_err(|e| fail("png", e.to_string()))?;
        root.present().map_err(|e| fail("png", e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| fail("png", "bad buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail("png", e.to_string()))?;
    write_atomic(&png_path, &png)?;

    let svg_path = out_dir.join(format!("{}.svg", fig.stem));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        draw_figure(&root, fig, &title, title_h).map_err(|e| fail("svg", e.to_string()))?;
        root.present().map_err(|e| fail("svg", e.to_string()))?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    title: &[String],
    title_h: u32,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (title_area, body) = root.split_vertically(title_h);
    for (i, line) in title.iter().enumerate() {
        let y = 12 + (i as u32 * TITLE_LINE) as i32;
        title_area.draw(&Text::new(line.clone(), (16, y), (FAMILY, TITLE_PX).into_font().color(&BLACK)))?;
    }
    let (rows, cols) = grid(fig.panels.len());
    let cells = body.split_evenly((rows, cols));
    for (cell, panel) in cells.iter().zip(&fig.panels) {
        let (chart_area, legend_area) = cell.split_vertically(CHART_H);
        draw_panel(&chart_area, fig, panel)?;
        draw_legend(&legend_area, panel)?;
    }
    Ok(())
}

enum YAxis {
    Linear(Range<f64>),
    Log(Range<f64>),
}

fn y_axis(scale: YScale, panel: &Panel) -> YAxis {
    let ys: Vec<f64> = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match scale {
        YScale::Percent => {
            let pad = ((hi - lo) * 0.08).max(1.0);
            YAxis::Linear((lo - pad).max(0.0)..(hi + pad).min(100.0))
        }
        YScale::Auto if lo > 0.0 && hi / lo >= LOG_RATIO => {
            // Whole decades, so that the axis carries at least two labelled powers of ten.
            YAxis::Log(10f64.powf(lo.log10().floor())..10f64.powf(hi.log10().ceil()))
        }
        YScale::Auto => {
            let pad = if hi > lo { (hi - lo) * 0.08 } else { (hi.abs() * 0.1).max(1e-3) };
            let lo = if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad };
            YAxis::Linear(lo..hi + pad)
        }
    }
}

fn x_range(fig: &Figure, panel: &Panel) -> Range<f64> {
    let xs = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if fig.integer_x {
        (lo - 0.5)..(hi + 0.5)
    } else {
        let pad = if hi > lo { (hi - lo) * 0.03 } else { 0.5 };
        (lo - pad)..(hi + pad)
    }
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, fig: &Figure, panel: &Panel) -> DrawResult<DB> {
    let x = x_range(fig, panel);
    let mut builder = ChartBuilder::on(area);
    builder.caption(&panel.title, (FAMILY, 17)).margin(8).margin_right(22).x_label_area_size(44).y_label_area_size(78);
    match y_axis(fig.y_scale, panel) {
        YAxis::Linear(y) => {
            let mut chart = builder.build_cartesian_2d(x, y)?;
            fill_chart(&mut chart, fig, panel, false)
        }
        YAxis::Log(y) => {
            let mut chart = builder.build_cartesian_2d(x, y.log_scale())?;
            fill_chart(&mut chart, fig, panel, true)
        }
    }
}

fn fill_chart<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    fig: &Figure,
    panel: &Panel,
    log_y: bool,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let integer_x = fig.integer_x;
    let x_fmt = move |v: &f64| {
        if !integer_x {
            fmt_tick(*v)
        } else if (v - v.round()).abs() < 1e-6 {
            format!("{}", v.round() as i64)
        } else {
            String::new()
        }
    };
    let y_fmt = |v: &f64| fmt_tick(*v);
    let x = chart.x_range();
    let x_labels = if integer_x { ((x.end - x.start).round() as usize).clamp(2, 10) } else { 8 };
    let y_desc = if log_y { format!("{} (log)", fig.y_label) } else { fig.y_label.to_string() };
    chart
        .configure_mesh()
        .x_desc(fig.x_label)
        .y_desc(y_desc)
        .x_labels(x_labels)
        .y_labels(8)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(246, 246, 246))
        .draw()?;
    for s in &panel.series {
        let style = ShapeStyle { color: s.color.to_rgba(), filled: false, stroke_width: 2 };
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), 9, 6, style))?;
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), style))?;
        }
        if s.points.len() <= MAX_MARKERS {
            let marker = if s.dashed { style } else { style.filled() };
            chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, marker)))?;
        }
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> DrawResult<DB> {
    let (w, _) = area.dim_in_pixel();
    let cols = legend_cols(panel);
    let left = 30;
    let col_w = (w as i32 - left - 10) / cols as i32;
    for (i, s) in panel.series.iter().enumerate() {
        let x = left + (i % cols) as i32 * col_w;
        let y = 4 + (i / cols) as i32 * LEGEND_ROW as i32;
        let mid = y + LEGEND_ROW as i32 / 2;
        let style = ShapeStyle { color: s.color.to_rgba(), filled: false, stroke_width: 2 };
        if s.dashed {
            area.draw(&PathElement::new(vec![(x, mid), (x + 9, mid)], style))?;
            area.draw(&PathElement::new(vec![(x + 15, mid), (x + 24, mid)], style))?;
            area.draw(&PathElement::new(vec![(x + 30, mid), (x + 36, mid)], style))?;
            area.draw(&Circle::new((x + 18, mid), 3, style))?;
        } else {
            area.draw(&PathElement::new(vec![(x, mid), (x + 36, mid)], style))?;
            area.draw(&Circle::new((x + 18, mid), 3, style.filled()))?;
        }
        let font = (FAMILY, 14).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Left,
            plotters::style::text_anchor::VPos::Center,
        ));
        area.draw(&Text::new(s.label.clone(), (x + 44, mid), font))?;
    }
    Ok(())
}

/// Tick labels: no float noise (`0.30000000000000004` → `0.3`), exponents only far from 1.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(fmt_tick(0.30000000000000004), "0.3");
        assert_eq!(fmt_tick(100.0), "100");
        assert_eq!(fmt_tick(0.0045), "0.0045");
        assert_eq!(fmt_tick(1e-4), "1e-4");
        assert_eq!(fmt_tick(0.0), "0");
    }

    #[test]
    fn long_titles_wrap_to_the_figure_width() {
        let t = format!("run — {}", grad_title(true));
        assert_eq!(title_lines(&t, 3 * PANEL_W), vec![t.clone()]);
        let lines = title_lines(&t, PANEL_W);
        assert!(lines.len() >= 2, "{lines:?}");
        assert_eq!(lines.join(" "), t);
    }

    #[test]
    fn log_axis_only_over_a_wide_positive_range() {
        let panel = |ys: &[f64]| Panel {
            title: String::new(),
            series: vec![Series {
                label: String::new(),
                points: ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect(),
                color: PALETTE[0],
                dashed: false,
            }],
        };
        assert!(matches!(y_axis(YScale::Auto, &panel(&[0.2, 1.4])), YAxis::Linear(_)));
        match y_axis(YScale::Auto, &panel(&[0.0045, 5.5])) {
            YAxis::Log(r) => assert!((r.start - 1e-3).abs() < 1e-12 && (r.end - 10.0).abs() < 1e-9),
            YAxis::Linear(_) => panic!("expected a log axis"),
        }
        assert!(matches!(y_axis(YScale::Auto, &panel(&[-1.0, 50.0])), YAxis::Linear(_)));
    }
}

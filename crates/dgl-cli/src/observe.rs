//! Observers of the training loop (burn's learner observers): what happens around the step driver
//! ([`crate::train`]) without being part of it — the epoch's running metrics, the paper's figure
//! diagnostics and their step log, the progress bar and per-epoch line, and evaluation. The driver
//! calls them in a fixed order, so their columns come out in the same order every run.

use std::time::Instant;

use candle_core::Tensor;
use dgl_core::diagnostics::{gradient_sources, s_statistic, GradientSources};
use dgl_core::loss::Loss;
use dgl_core::method::{restore, snapshot};
use dgl_core::task::{count_correct, Labels, Metric, Task};
use dgl_core::{Method, MultimodalModel, StepReport};
use dgl_data::{epoch_batches, Dataset, Mode};
use dgl_models::Model;

use crate::checkpoint::EpochProgress;
use crate::data::RunData;
use crate::error::Result;
use crate::run_dir::{Row, RunDir};

/// Where the loop stands at a step.
#[derive(Clone, Copy, Debug)]
pub struct StepPosition {
    /// 0-based epoch and step within it.
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub steps_per_epoch: usize,
    /// Steps taken over the whole run before this one.
    pub global_step: u64,
}

/// A step the method took: its inputs and what it reported.
pub struct StepTaken<'a> {
    pub at: StepPosition,
    /// The run's files (for step logs).
    pub run: &'a RunDir,
    pub inputs: &'a [Tensor],
    pub targets: &'a Tensor,
    pub report: &'a StepReport,
}

/// A step left out because of a NaN / infinite loss or gradient (`train.skip_non_finite`).
#[derive(Clone, Debug)]
pub struct NonFiniteStep {
    /// `loss` or `gradient`.
    pub what: &'static str,
    /// Which value, and the step's loss terms when known.
    pub detail: String,
}

/// What the loop shows an observer at the end of an epoch.
pub struct EpochView<'a> {
    pub task: &'a dyn Task,
    pub method: &'a dyn Method,
    pub model: &'a Model,
    pub data: &'a RunData,
}

/// A loop observer. Every hook defaults to doing nothing.
pub trait Observer {
    /// Before the first step of an epoch (of its remainder, `start` > 0, when resumed inside it).
    fn epoch_started(&mut self, _epoch: usize, _steps_per_epoch: usize, _start: usize) -> Result<()> {
        Ok(())
    }

    /// After a step the method took; `stats` are the epoch's running metrics.
    fn step_taken(&mut self, _step: &StepTaken<'_>, _stats: &mut EpochStats) -> Result<()> {
        Ok(())
    }

    /// After a step skipped for a non-finite value.
    fn step_skipped(&mut self, _at: StepPosition, _why: &NonFiniteStep) {}

    /// After every step, taken or skipped, with the number of steps taken so far.
    fn step_finished(&mut self, _steps_taken: u64) {}

    /// Adds the observer's columns to the epoch's metrics row (in observer order).
    fn epoch_row(&mut self, _view: &EpochView<'_>, _row: &mut Row) -> Result<()> {
        Ok(())
    }

    /// Once the epoch's row is complete.
    fn epoch_finished(&mut self, _row: &Row, _run: &RunDir) -> Result<()> {
        Ok(())
    }

    /// The epoch stops early (interrupted, or a non-finite step stops the run).
    fn epoch_abandoned(&mut self) {}
}

/// Running means of named scalars (losses, method scalars, diagnostics) over an epoch. A NaN or
/// infinite value is never averaged in and never dropped silently: it is counted in
/// `<name>_nonfinite`, and every row reports [`NONFINITE_TOTAL`], the epoch's total of such values.
/// A counter is kept in the same list as `(<name>_nonfinite, count, 0)` (n = 0 marks a counter; a
/// mean always has n ≥ 1), so the position an interrupted epoch's checkpoint saves carries it.
#[derive(Default)]
pub struct Means(pub Vec<(String, f64, usize)>);

/// The metrics column with the number of non-finite values left out of an epoch's means.
pub const NONFINITE_TOTAL: &str = "nonfinite_values";

impl Means {
    pub fn add(&mut self, k: &str, v: f64) {
        if v.is_finite() {
            self.accumulate(k, v, 1);
        } else {
            self.accumulate(&format!("{k}_nonfinite"), 1.0, 0);
        }
    }

    fn accumulate(&mut self, k: &str, v: f64, n: usize) {
        match self.0.iter_mut().find(|(name, _, _)| name == k) {
            Some(e) => {
                e.1 += v;
                e.2 += n;
            }
            None => self.0.push((k.to_string(), v, n)),
        }
    }

    fn into_row(self, row: &mut Row) {
        let mut total = 0.0;
        for (k, s, n) in self.0 {
            if n == 0 {
                total += s;
                row.push(k, s);
            } else {
                row.push(k, s / n as f64);
            }
        }
        row.push(NONFINITE_TOTAL, total);
    }
}

/// The epoch's running training metrics (the first observer): the losses, method scalars and
/// gradient norm of every step taken, training accuracy, skipped steps. An interrupted epoch's
/// checkpoint saves them ([`EpochProgress`]).
pub struct EpochStats {
    pub means: Means,
    pub n_seen: usize,
    pub n_correct: usize,
    pub skipped: usize,
    /// Whether the run skips non-finite steps (then `skipped_steps` is a column).
    report_skipped: bool,
    /// What `train_acc` counts: samples, or labelled positions (pixel accuracy).
    labels: Labels,
}

impl EpochStats {
    /// The statistics of an epoch starting at `p` (the default progress for a fresh epoch).
    pub fn resume(p: EpochProgress, report_skipped: bool, labels: Labels) -> Self {
        Self {
            means: Means(p.means),
            n_seen: p.n_seen,
            n_correct: p.n_correct,
            skipped: p.skipped,
            report_skipped,
            labels,
        }
    }

    /// Records a step the method took.
    pub fn record(&mut self, step: &StepTaken<'_>) -> Result<()> {
        let r = step.report;
        for (k, v) in &r.losses {
            self.means.add(&format!("train_{k}"), *v);
        }
        for (k, v) in &r.scalars {
            self.means.add(k, *v);
        }
        self.means.add("grad_norm", r.grad_norm);
        if let Some(l) = &r.logits_mm {
            let (hit, n) = count_correct(self.labels, l, step.targets)?;
            self.n_correct += hit;
            self.n_seen += n;
        }
        Ok(())
    }

    /// The epoch's position for a checkpoint taken inside it.
    pub fn progress(self, step_in_epoch: usize, elapsed_s: f64) -> EpochProgress {
        EpochProgress {
            step_in_epoch,
            means: self.means.0,
            n_seen: self.n_seen,
            n_correct: self.n_correct,
            skipped: self.skipped,
            elapsed_s,
        }
    }

    /// The means, `train_acc` and `skipped_steps` columns.
    pub fn into_row(self, row: &mut Row) {
        self.means.into_row(row);
        if self.n_seen > 0 {
            row.push("train_acc", self.n_correct as f64 / self.n_seen as f64);
        }
        if self.report_skipped {
            row.push("skipped_steps", self.skipped as f64);
        }
    }
}

/// The paper's figure diagnostics: Fig. 3(a)'s s statistic every step (a two-modality linear head),
/// and Fig. 1(c)/3(b)'s gradient reaching each encoder from L_mm vs from its L_m every
/// `every` steps, logged per step to `steps.csv`.
pub struct FigureDiagnostics<'a> {
    pub model: &'a Model,
    /// The model's modality names (read once, not at every step).
    pub names: Vec<String>,
    /// The task's loss (L_mm and L_m of the diagnostic).
    pub loss: &'a dyn Loss,
    /// 0 = never.
    pub every: usize,
}

impl FigureDiagnostics<'_> {
    /// The gradient-source diagnostic on a training-mode forward whose BatchNorm statistics updates
    /// are undone afterwards, so measuring never changes the run.
    fn gradient_sources(&self, x: &[Tensor], y: &Tensor) -> Result<Vec<GradientSources>> {
        let state = self.model.state_vars();
        let saved = snapshot(&state)?;
        let z = self.model.encode_all(x, true)?;
        let s = gradient_sources(self.model, &z, y, self.loss)?;
        restore(&state, &saved)?;
        Ok(s)
    }
}

impl Observer for FigureDiagnostics<'_> {
    fn step_taken(&mut self, step: &StepTaken<'_>, stats: &mut EpochStats) -> Result<()> {
        let names = &self.names;
        let (z, y) = (&step.report.z, step.targets);
        // Fig. 3(a): s for modality m's branch uses the other modality's head block and z.
        if names.len() == 2 && z.len() == 2 {
            for (m, name) in names.iter().enumerate() {
                if let Some(w) = self.model.linear_head_block(1 - m) {
                    let s = s_statistic(&w, &z[1 - m], y)?;
                    stats.means.add(&format!("s_mean_{name}"), s.mean);
                    stats.means.add(&format!("s_median_{name}"), s.median);
                }
            }
        }
        let global = step.at.global_step;
        if self.every == 0 || names.len() < 2 || global % self.every as u64 != 0 {
            return Ok(());
        }
        let sources = self.gradient_sources(step.inputs, y)?;
        let mut line = Row::default();
        line.push("step", global as f64);
        line.push("epoch", step.at.epoch as f64);
        for (name, s) in names.iter().zip(&sources) {
            stats.means.add(&format!("grad_mm_{name}"), s.from_multimodal);
            stats.means.add(&format!("grad_uni_{name}"), s.from_unimodal);
            line.push(format!("grad_mm_{name}"), s.from_multimodal);
            line.push(format!("grad_uni_{name}"), s.from_unimodal);
        }
        if global == 0 {
            step.run.append_line(RunDir::STEPS_CSV, &line.header())?;
        }
        step.run.append_line(RunDir::STEPS_CSV, &line.csv())
    }
}

/// The task's metrics of the multimodal prediction and of every branch on the validation split
/// (when the run has one) and the test split: the `val_*` and `test_*` columns (classification:
/// `test_acc`, `test_acc_<branch>`).
pub struct Evaluation;

impl Observer for Evaluation {
    fn epoch_row(&mut self, v: &EpochView<'_>, row: &mut Row) -> Result<()> {
        if let Some(val) = &v.data.validation {
            for (k, x) in evaluate(v.task, v.method, v.model, v.data, val.as_ref())? {
                row.push(format!("val_{k}"), x);
            }
        }
        for (k, x) in evaluate(v.task, v.method, v.model, v.data, v.data.test.as_ref())? {
            row.push(format!("test_{k}"), x);
        }
        Ok(())
    }
}

/// The task's metrics of the multimodal prediction and of every branch over a whole split (eval
/// mode, every sample, no dropped batch): `(metric, value)` for the multimodal prediction, then
/// `(metric_<branch>, value)` per branch.
pub fn evaluate(
    task: &dyn Task,
    method: &dyn Method,
    model: &dyn MultimodalModel,
    data: &RunData,
    ds: &dyn Dataset,
) -> Result<Vec<(String, f64)>> {
    let mut multimodal = task.metric();
    let mut branches: Vec<(String, Box<dyn Metric>)> = Vec::new();
    for idx in &epoch_batches(ds.len(), data.batch_size, None, false) {
        let (x, y) = data.batch(ds, idx, Mode::Eval)?;
        let p = method.predict(model, &x)?;
        multimodal.update(&p.multimodal, &y)?;
        for (name, l) in &p.branches {
            let pos = match branches.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    branches.push((name.clone(), task.metric()));
                    branches.len() - 1
                }
            };
            branches[pos].1.update(l, &y)?;
        }
    }
    let mut out: Vec<(String, f64)> = multimodal.values().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for (n, m) in &branches {
        out.extend(m.values().into_iter().map(|(k, v)| (format!("{k}_{n}"), v)));
    }
    Ok(out)
}

/// Appends the epoch's row to `metrics.jsonl` and rewrites `metrics.csv` from it.
pub struct MetricsWriter;

impl Observer for MetricsWriter {
    fn epoch_finished(&mut self, row: &Row, run: &RunDir) -> Result<()> {
        run.append_line(RunDir::METRICS_JSONL, &row.json())?;
        run.write_metrics_csv()
    }
}

/// The progress bar on stderr (`show`), warnings about skipped steps, and one line per epoch on
/// stdout (`verbose`).
pub struct Progress {
    pub show: bool,
    pub verbose: bool,
    pub epochs: usize,
    bar: Option<indicatif::ProgressBar>,
    epoch: usize,
}

impl Progress {
    pub fn new(show: bool, verbose: bool, epochs: usize) -> Self {
        Self { show, verbose, epochs, bar: None, epoch: 0 }
    }

    fn clear(&mut self) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn epoch_started(&mut self, epoch: usize, steps_per_epoch: usize, start: usize) -> Result<()> {
        self.epoch = epoch;
        let pb = progress_bar(self.show, steps_per_epoch as u64, epoch, self.epochs);
        pb.set_position(start as u64);
        self.bar = Some(pb);
        Ok(())
    }

    fn step_skipped(&mut self, at: StepPosition, why: &NonFiniteStep) {
        let msg = format!(
            "warning: skipped step {}/{} of epoch {}/{} (global step {}): non-finite {}: {}",
            at.step_in_epoch + 1,
            at.steps_per_epoch,
            at.epoch + 1,
            self.epochs,
            at.global_step,
            why.what,
            why.detail
        );
        match &self.bar {
            Some(pb) => pb.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    fn step_finished(&mut self, _steps_taken: u64) {
        if let Some(pb) = &self.bar {
            pb.inc(1);
        }
    }

    fn epoch_row(&mut self, _view: &EpochView<'_>, _row: &mut Row) -> Result<()> {
        // The steps are over: the bar goes before the evaluation.
        self.clear();
        Ok(())
    }

    fn epoch_finished(&mut self, row: &Row, _run: &RunDir) -> Result<()> {
        if self.verbose {
            println!("{}", epoch_line(row, self.epochs));
        }
        Ok(())
    }

    fn epoch_abandoned(&mut self) {
        self.clear();
    }
}

/// Calls [`crate::train::RunControl::on_step`] after every step.
pub struct StepCallback<'a>(pub &'a (dyn Fn(u64) + Send + Sync));

impl Observer for StepCallback<'_> {
    fn step_finished(&mut self, steps_taken: u64) {
        (self.0)(steps_taken)
    }
}

/// Elapsed wall time of an epoch, including the part before a resume.
pub struct EpochClock {
    start: Instant,
    before: f64,
}

impl EpochClock {
    pub fn start(elapsed_before: f64) -> Self {
        Self { start: Instant::now(), before: elapsed_before }
    }

    pub fn seconds(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }
}

fn progress_bar(show: bool, len: u64, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} batches, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(format!("{}/{}", epoch + 1, epochs));
    pb
}

/// `epoch 3/12  loss_mm 1.234  test multi 45.00%  audio 40.00%  visual 30.00%  (12.3 s)`
pub fn epoch_line(row: &Row, epochs: usize) -> String {
    let mut s = format!("epoch {:>3}/{epochs}", row.get("epoch").unwrap_or(0.0) as usize);
    if let Some(l) = row.get("train_loss_mm") {
        s += &format!("  loss_mm {l:.4}");
    }
    if let Some(a) = row.get("test_acc") {
        s += &format!("  test multi {:.2}%", 100.0 * a);
    }
    for (k, v) in &row.0 {
        if let Some(b) = k.strip_prefix("test_acc_") {
            s += &format!("  {b} {:.2}%", 100.0 * v);
        }
    }
    if let Some(t) = row.get("seconds") {
        s += &format!("  ({t:.1} s)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-finite diagnostic values are left out of the means and counted per name, with the
    /// epoch's total in every row; the counts survive the checkpointed position of an epoch.
    #[test]
    fn non_finite_values_are_counted_not_dropped() {
        let mut m = Means::default();
        for v in [1.0, f64::NAN, 3.0] {
            m.add("s_mean_audio", v);
        }
        m.add("ratio_visual", f64::INFINITY);
        m.add("ratio_visual", f64::NEG_INFINITY);
        m.add("grad_mm_audio", 0.5);
        // An interrupted epoch saves `m.0` and resumes from it.
        let resumed = Means(m.0.clone());
        for means in [m, resumed] {
            let mut row = Row::default();
            means.into_row(&mut row);
            assert_eq!(row.get("s_mean_audio"), Some(2.0), "the mean of the finite values");
            assert_eq!(row.get("s_mean_audio_nonfinite"), Some(1.0));
            assert_eq!(row.get("ratio_visual"), None, "no finite value: no mean");
            assert_eq!(row.get("ratio_visual_nonfinite"), Some(2.0));
            assert_eq!(row.get("grad_mm_audio"), Some(0.5));
            assert_eq!(row.get("grad_mm_audio_nonfinite"), None);
            assert_eq!(row.get(NONFINITE_TOTAL), Some(3.0));
        }
        let mut row = Row::default();
        Means::default().into_row(&mut row);
        assert_eq!(row.get(NONFINITE_TOTAL), Some(0.0), "reported (as 0) in every row");
    }
}

//! The one training loop. Every method goes through it; a method only says how a batch becomes
//! parameter updates (`dgl_core::Method`). Data flows one way: datasets → batches → method step →
//! optimizer → metrics / checkpoints.
//!
//! Runs never lose work (see docs/runs.md): a checkpoint is written atomically after every epoch
//! and, when [`RunControl::stop`] is raised (Ctrl-C), after the current step, with the position
//! inside the epoch; [`resume`] continues a run bit-identically on the CPU. A NaN / infinite loss
//! or gradient stops the run keeping the last checkpoint, or, with `train.skip_non_finite`, skips
//! the step.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, D};
use dgl_core::diagnostics::{gradient_sources, s_statistic};
use dgl_core::loss::CrossEntropy;
use dgl_core::method::{restore, snapshot};
use dgl_core::rng::Rng;
use dgl_core::{Method, MultimodalModel, Optimizer, StepContext, StepReport};
use dgl_data::{epoch_batches, Dataset, Mode};
use dgl_models::{build_model, Model};

use crate::checkpoint::{
    check_compatible, check_model_tensors, Checkpoint, CheckpointMeta, EpochProgress, METHOD_PREFIX, OPTIMIZER_PREFIX,
};
use crate::config::{DeviceKind, TrainConfig};
use crate::data::RunData;
use crate::error::{CliError, Result};
use crate::methods::{build_method, needs_validation};
use crate::resume_check;
use crate::run_dir::{Row, RunDir};

/// How to run (not part of the resolved configuration).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Print one line per epoch on stdout.
    pub verbose: bool,
    /// Replace a non-empty run directory.
    pub overwrite: bool,
}

/// Control of a running run: a stop request (Ctrl-C) and, for tests, fault injection.
#[derive(Clone, Debug, Default)]
pub struct RunControl {
    /// When raised, the run finishes its current step, writes a checkpoint and returns
    /// [`CliError::Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
    /// Testing: behave as if `stop` were raised once this many steps (counted over the whole run)
    /// have been taken.
    #[doc(hidden)]
    pub stop_after_steps: Option<u64>,
    /// Testing: feed NaN inputs to the steps whose global index lies in this range.
    #[doc(hidden)]
    pub inject_non_finite: Option<Range<u64>>,
    /// Called after every training step with the number of steps taken so far (progress
    /// reporting, resource monitoring; the host-memory test samples RSS here).
    pub on_step: Option<StepHook>,
}

/// A callback run after every training step ([`RunControl::on_step`]).
#[derive(Clone)]
pub struct StepHook(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for StepHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepHook(..)")
    }
}

impl RunControl {
    fn stop_requested(&self, steps_taken: u64) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
            || self.stop_after_steps.is_some_and(|n| steps_taken >= n)
    }
}

/// The result of a finished run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Per-epoch metrics, as written to `metrics.jsonl` (for a resumed run, the earlier epochs are
    /// read back from it).
    pub epochs: Vec<Row>,
    /// Names of the per-branch accuracy columns (`test_acc_audio`, …).
    pub branch_columns: Vec<String>,
}

impl RunOutcome {
    pub fn last(&self) -> &Row {
        self.epochs.last().expect("at least one epoch")
    }
}

/// The device of a configuration.
pub fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => Device::new_cuda(0).map_err(|e| CliError::Config(format!("--device cuda: {e}"))),
    }
}

/// Trains one configuration into a new run directory `out`.
pub fn train(cfg: &TrainConfig, out: &Path, opts: &RunOptions) -> Result<RunOutcome> {
    train_with(cfg, out, opts, &RunControl::default())
}

/// [`train`] with a [`RunControl`] (Ctrl-C handling).
pub fn train_with(cfg: &TrainConfig, out: &Path, opts: &RunOptions, control: &RunControl) -> Result<RunOutcome> {
    run(cfg, out, opts, control, None)
}

/// Continues the run in `dir` from its checkpoint, with the checkpoint's configuration or `cfg`,
/// which may differ from it only in `train.epochs` (to extend a run), `train.skip_non_finite` and `train.tf32`.
/// Rows the metrics files gained after the checkpoint are dropped first, so none is duplicated.
pub fn resume(dir: &Path, cfg: Option<&TrainConfig>, opts: &RunOptions, control: &RunControl) -> Result<RunOutcome> {
    if !dir.is_dir() {
        return Err(CliError::Run(format!("--resume {}: no such run directory", dir.display())));
    }
    let path = dir.join(RunDir::CHECKPOINT);
    if !path.is_file() {
        return Err(CliError::Run(format!(
            "--resume {}: there is no checkpoint ({}) in it — the run stopped before its first checkpoint was written; \
             start it again (with --overwrite)",
            dir.display(),
            RunDir::CHECKPOINT
        )));
    }
    let ckpt = Checkpoint::load(&path)?;
    let saved = ckpt.meta.config()?;
    let cfg = cfg.cloned().unwrap_or_else(|| saved.clone());
    check_compatible(&saved, &cfg).map_err(|e| match e {
        CliError::Config(m) => CliError::Config(format!("--resume {}: {m}", dir.display())),
        other => other,
    })?;
    let done = ckpt.meta.epoch;
    if cfg.train.epochs <= done {
        let why = if cfg.train.epochs == done && ckpt.meta.progress.is_none() {
            format!("nothing to do, the run has finished its {done} epochs")
        } else {
            format!("the checkpoint is {}, beyond {} epochs", ckpt.meta.position(), cfg.train.epochs)
        };
        return Err(CliError::Run(format!(
            "--resume {}: {why}; pass --epochs N (N > {done}) to train it further",
            dir.display()
        )));
    }
    run(&cfg, dir, opts, control, Some(ckpt))
}

fn run(
    cfg: &TrainConfig,
    out: &Path,
    opts: &RunOptions,
    control: &RunControl,
    ckpt: Option<Checkpoint>,
) -> Result<RunOutcome> {
    cfg.validate()?;
    if ckpt.is_none() {
        // A directory the run may not use or replace is refused before any data is read.
        RunDir::check_new(out, opts.overwrite)?;
    }
    let Setup { cfg: effective, device, data, mut method, model } = setup(cfg, cfg.device, needs_validation(cfg))?;
    let cfg = &effective;
    let steps_per_epoch = resume_check::steps_per_epoch(cfg, data.train.len())?;

    let mut opt = cfg.train.optimizer.build()?;
    // Everything is checked before the first file is written: a new run replacing an old one is
    // built beside it until its first checkpoint (`RunDir::commit`); a resume changes the run's
    // files only once all of them have been checked (`resume_check`).
    let (run, start_epoch, mut progress, mut epochs, step, last_checkpoint, pending_config) = match ckpt {
        None => {
            let run = RunDir::create(out, opts.overwrite)?;
            run.write_atomic(RunDir::CONFIG, cfg.to_toml()?.as_bytes())?;
            (run, 0, None, Vec::new(), 0, None, false)
        }
        Some(c) => {
            let run = RunDir::open(out)?;
            load_checkpoint(&c, &run.file(RunDir::CHECKPOINT), &model, Some(&mut opt), method.as_mut(), &device)?;
            let plan = resume_check::check(&run, &c, cfg, steps_per_epoch)?;
            plan.apply(&run)?;
            if opts.verbose {
                println!("resuming {} {} (global step {})", out.display(), c.meta.position(), c.meta.global_step);
            }
            let position = c.meta.position();
            (run, c.meta.epoch, c.meta.progress, plan.rows, c.meta.global_step, Some(position), plan.config_changes)
        }
    };
    let env = crate::environment::Environment::capture(
        cfg,
        if start_epoch > 0 || progress.is_some() { "resume" } else { "start" },
    );
    let env = serde_json::to_string(&env).map_err(|e| CliError::Run(format!("{}: {e}", RunDir::ENVIRONMENT)))?;
    run.append_line(RunDir::ENVIRONMENT, &env)?;
    let mut trainer =
        Loop { cfg, model: &model, data: &data, run, opts, control, step, last_checkpoint, pending_config };
    for epoch in start_epoch..cfg.train.epochs {
        match trainer.epoch(method.as_mut(), &mut opt, epoch, progress.take())? {
            EpochEnd::Finished(row) => {
                epochs.push(row);
                trainer.checkpoint(method.as_ref(), &opt, epoch + 1, None)?;
                if epoch + 1 < cfg.train.epochs && control.stop_requested(trainer.step) {
                    return Err(trainer.interrupted(&format!("after epoch {}/{}", epoch + 1, cfg.train.epochs)));
                }
            }
            EpochEnd::Interrupted(p) => {
                let at = format!("in epoch {}/{} after step {}", epoch + 1, cfg.train.epochs, p.step_in_epoch);
                trainer.checkpoint(method.as_ref(), &opt, epoch, Some(p))?;
                return Err(trainer.interrupted(&at));
            }
        }
    }
    let branch_columns = epochs
        .first()
        .map(|r| r.0.iter().filter(|(k, _)| k.starts_with("test_acc_")).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    Ok(RunOutcome { epochs, branch_columns })
}

/// What a run computes with (training, or `dgl eval` on its checkpoint).
pub(crate) struct Setup {
    /// The configuration with the dataset's class count (what the run directory records).
    pub cfg: TrainConfig,
    pub device: Device,
    /// The data, restricted to the model's modalities.
    pub data: RunData,
    pub method: Box<dyn Method>,
    /// Freshly initialised from `cfg.seed`.
    pub model: Model,
}

/// The device, data, method and model of a configuration, on `device` (TF32 set as configured).
pub(crate) fn setup(cfg: &TrainConfig, device_kind: DeviceKind, need_validation: bool) -> Result<Setup> {
    let device = device(device_kind)?;
    // Process-wide in candle (matmuls) and read by the cuDNN convolution; a no-op on the CPU.
    candle_core::cuda::set_gemm_reduced_precision_f32(cfg.train.tf32);
    let mut data = RunData::build(cfg, need_validation, &device)?;
    // The number of classes comes from the dataset; the configuration saved with the run (and in
    // its checkpoints) records the effective value (runs saved before that say the preset's).
    let mut cfg = cfg.clone();
    cfg.model.num_classes = data.train.num_classes();
    let method = build_method(&cfg, data.train.num_classes())?;
    // The model's modalities, by name and in the configuration's order, select the data's: all of
    // them, or a subset (one modality: a unimodal model; a generic dataset's views come sorted).
    let names: Vec<&str> = cfg.model.modalities.iter().map(|m| m.name.as_str()).collect();
    data.select_modalities(&names)?;
    let model_cfg = cfg.model.clone();
    let model = build_model(&model_cfg, &data.modality_shapes(), &device, cfg.seed)?;
    method.check(&model)?;
    Ok(Setup { cfg, device, data, method, model })
}

/// Puts a checkpoint's model, optimizer (when given) and method state in place (the model's
/// values and shapes checked first; `path` is where it was read from, for messages).
pub(crate) fn load_checkpoint(
    c: &Checkpoint,
    path: &Path,
    model: &Model,
    opt: Option<&mut Optimizer>,
    method: &mut dyn Method,
    device: &Device,
) -> Result<()> {
    let tensors = c.model_tensors();
    check_model_tensors(&tensors, path)?;
    dgl_models::import_state(model, &tensors, true)
        .map_err(|e| CliError::Config(format!("the checkpoint does not fit the model of this configuration: {e}")))?;
    let on_device = |v: Vec<(String, Tensor)>| -> Result<Vec<(String, Tensor)>> {
        v.into_iter().map(|(k, t)| Ok((k, t.to_device(device)?))).collect()
    };
    if let Some(opt) = opt {
        opt.load_state(on_device(c.prefixed(OPTIMIZER_PREFIX))?)?;
    }
    method.load_state(&on_device(c.prefixed(METHOD_PREFIX))?)?;
    Ok(())
}

/// How an epoch ended.
enum EpochEnd {
    Finished(Row),
    /// Stopped on request after a step; the epoch's position and statistics so far.
    Interrupted(EpochProgress),
}

struct Loop<'a> {
    cfg: &'a TrainConfig,
    model: &'a Model,
    data: &'a RunData,
    run: RunDir,
    opts: &'a RunOptions,
    control: &'a RunControl,
    /// Steps taken over the whole run.
    step: u64,
    /// Where the last checkpoint written (or resumed from) stands, for messages.
    last_checkpoint: Option<String>,
    /// `config.toml` still describes the checkpoint resumed from; the resumed configuration is
    /// written with the next checkpoint.
    pending_config: bool,
}

/// Everything a step may change, copied before it when non-finite steps are skipped.
struct Saved {
    model: Vec<(String, Tensor)>,
    optimizer: Vec<(String, Tensor)>,
    method: Vec<(String, Tensor)>,
}

impl Saved {
    fn take(model: &Model, opt: &Optimizer, method: &dyn Method) -> Result<Self> {
        Ok(Self { model: snapshot(&model.state_vars())?, optimizer: opt.state()?, method: method.state()? })
    }

    /// Puts the model (parameters and BatchNorm statistics), the optimizer's momentum and the
    /// method's state back. Method state created lazily during the step (e.g. the first
    /// projection matrix) stays, as `Method::load_state` only sets what it is given.
    fn restore(self, model: &Model, opt: &mut Optimizer, method: &mut dyn Method) -> Result<()> {
        restore(&model.state_vars(), &self.model)?;
        opt.load_state(self.optimizer)?;
        method.load_state(&self.method)?;
        Ok(())
    }
}

/// A non-finite loss or gradient the method did not catch itself (every method checks its losses
/// before it applies an update; this also covers the reported gradient norm).
fn check_report(report: &StepReport) -> std::result::Result<(), (&'static str, String)> {
    if let Some((name, v)) = report.losses.iter().find(|(_, v)| !v.is_finite()) {
        return Err(("loss", format!("{name} = {v} ({})", loss_terms(report))));
    }
    if !report.grad_norm.is_finite() {
        return Err(("gradient", format!("global gradient norm = {} ({})", report.grad_norm, loss_terms(report))));
    }
    Ok(())
}

fn loss_terms(report: &StepReport) -> String {
    let t: Vec<String> = report.losses.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("loss terms: {}", t.join(", "))
}

/// Running means of named scalars (losses, method scalars, diagnostics) over an epoch. A NaN or
/// infinite value is never averaged in and never dropped silently: it is counted in
/// `<name>_nonfinite`, and every row reports [`NONFINITE_TOTAL`], the epoch's total of such values.
/// A counter is kept in the same list as `(<name>_nonfinite, count, 0)` (n = 0 marks a counter; a
/// mean always has n ≥ 1), so the position an interrupted epoch's checkpoint saves carries it.
#[derive(Default)]
struct Means(Vec<(String, f64, usize)>);

/// The metrics column with the number of non-finite values left out of an epoch's means.
pub const NONFINITE_TOTAL: &str = "nonfinite_values";

impl Means {
    fn add(&mut self, k: &str, v: f64) {
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

/// Number of correct argmax predictions.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred.eq(labels)?.to_dtype(candle_core::DType::F32)?.sum_all()?.to_scalar::<f32>()? as usize)
}

impl Loop<'_> {
    fn epoch(
        &mut self,
        method: &mut dyn Method,
        opt: &mut Optimizer,
        epoch: usize,
        resume: Option<EpochProgress>,
    ) -> Result<EpochEnd> {
        let cfg = self.cfg;
        let t0 = Instant::now();
        let lr = cfg.train.scheduler.lr_at(cfg.train.optimizer.lr, epoch);
        opt.set_lr(lr);
        // A run resumed inside an epoch already ran the epoch-start hook before its checkpoint
        // (its effects are in the method state); running it again would change the run.
        let p = match resume {
            Some(p) => p,
            None => {
                method.on_epoch_start(self.model, epoch, self.data)?;
                EpochProgress::default()
            }
        };
        let (start, elapsed_before) = (p.step_in_epoch, p.elapsed_s);
        let (mut n_seen, mut n_correct, mut skipped) = (p.n_seen, p.n_correct, p.skipped);
        let mut means = Means(p.means);
        let epoch_seed = Rng::derive(cfg.seed, 1_000 + epoch as u64).next_u64();
        // Not empty, and `start` is inside it: checked before the run started (`resume_check`).
        let batches = epoch_batches(self.data.train.len(), cfg.train.batch_size, Some(epoch_seed), cfg.train.drop_last);
        let steps_per_epoch = batches.len();
        let pb = progress_bar(self.opts.progress, steps_per_epoch as u64, epoch, cfg.train.epochs);
        pb.set_position(start as u64);
        let names = self.model.modality_names();
        for (i, idx) in batches.iter().enumerate().skip(start) {
            let (mut x, y) = self.data.batch(self.data.train.as_ref(), idx, Mode::Train { seed: epoch_seed })?;
            if self.control.inject_non_finite.as_ref().is_some_and(|r| r.contains(&self.step)) {
                x = x.iter().map(|t| t.affine(f64::NAN, 0.0)).collect::<candle_core::Result<_>>()?;
            }
            let saved = if cfg.train.skip_non_finite { Some(Saved::take(self.model, opt, method)?) } else { None };
            let mut ctx = step_context(self.model, opt, cfg, epoch, i, steps_per_epoch, self.step);
            let outcome = match method.train_step(&mut ctx, &x, &y) {
                Ok(report) => check_report(&report).map(|()| report),
                Err(dgl_core::Error::NonFinite { what, detail }) => {
                    // The methods say where in 0-based numbers; the loop's messages count from 1.
                    let suffix = format!(" at epoch {epoch} step {i}");
                    Err((what, detail.strip_suffix(suffix.as_str()).unwrap_or(&detail).to_string()))
                }
                Err(e) => return Err(e.into()),
            };
            let report = match (outcome, saved) {
                (Ok(report), _) => Some(report),
                (Err((what, detail)), Some(saved)) => {
                    saved.restore(self.model, opt, method)?;
                    skipped += 1;
                    pb.suspend(|| {
                        eprintln!(
                            "warning: skipped step {}/{steps_per_epoch} of epoch {}/{} (global step {}): non-finite {what}: {detail}",
                            i + 1,
                            epoch + 1,
                            cfg.train.epochs,
                            self.step
                        )
                    });
                    None
                }
                (Err((what, detail)), None) => {
                    pb.finish_and_clear();
                    return Err(self.non_finite(what, &detail, epoch, i, steps_per_epoch));
                }
            };
            if let Some(report) = report {
                for (k, v) in &report.losses {
                    means.add(&format!("train_{k}"), *v);
                }
                for (k, v) in &report.scalars {
                    means.add(k, *v);
                }
                means.add("grad_norm", report.grad_norm);
                if let Some(l) = &report.logits_mm {
                    n_correct += correct(l, &y)?;
                    n_seen += idx.len();
                }
                // Fig. 3(a): s for modality m's branch uses the other modality's head block and z.
                if names.len() == 2 && report.z.len() == 2 {
                    for (m, name) in names.iter().enumerate() {
                        if let Some(w) = self.model.linear_head_block(1 - m) {
                            let s = s_statistic(&w, &report.z[1 - m], &y)?;
                            means.add(&format!("s_mean_{name}"), s.mean);
                            means.add(&format!("s_median_{name}"), s.median);
                        }
                    }
                }
                // Fig. 1(c)/3(b): gradient reaching each encoder from L_mm vs L_m (extra passes).
                if cfg.train.diagnostics_every > 0
                    && names.len() >= 2
                    && self.step % cfg.train.diagnostics_every as u64 == 0
                {
                    let sources = self.gradient_sources(&x, &y)?;
                    let mut line = Row::default();
                    line.push("step", self.step as f64);
                    line.push("epoch", epoch as f64);
                    for (name, s) in names.iter().zip(&sources) {
                        means.add(&format!("grad_mm_{name}"), s.from_multimodal);
                        means.add(&format!("grad_uni_{name}"), s.from_unimodal);
                        line.push(format!("grad_mm_{name}"), s.from_multimodal);
                        line.push(format!("grad_uni_{name}"), s.from_unimodal);
                    }
                    if self.step == 0 {
                        self.run.append_line(RunDir::STEPS_CSV, &line.header())?;
                    }
                    self.run.append_line(RunDir::STEPS_CSV, &line.csv())?;
                }
            }
            self.step += 1;
            pb.inc(1);
            if let Some(hook) = &self.control.on_step {
                (hook.0)(self.step);
            }
            if i + 1 < steps_per_epoch && self.control.stop_requested(self.step) {
                pb.finish_and_clear();
                return Ok(EpochEnd::Interrupted(EpochProgress {
                    step_in_epoch: i + 1,
                    means: means.0,
                    n_seen,
                    n_correct,
                    skipped,
                    elapsed_s: elapsed_before + t0.elapsed().as_secs_f64(),
                }));
            }
        }
        pb.finish_and_clear();
        let mut ctx = step_context(self.model, opt, cfg, epoch, steps_per_epoch, steps_per_epoch, self.step);
        method.on_epoch_end(&mut ctx, self.data)?;

        let mut row = Row::default();
        row.push("epoch", (epoch + 1) as f64);
        row.push("lr", lr);
        means.into_row(&mut row);
        if n_seen > 0 {
            row.push("train_acc", n_correct as f64 / n_seen as f64);
        }
        if cfg.train.skip_non_finite {
            row.push("skipped_steps", skipped as f64);
        }
        if let Some(val) = &self.data.validation {
            for (k, v) in evaluate(method, self.model, self.data, val.as_ref())? {
                row.push(format!("val_{k}"), v);
            }
        }
        for (k, v) in evaluate(method, self.model, self.data, self.data.test.as_ref())? {
            row.push(format!("test_{k}"), v);
        }
        row.push("seconds", elapsed_before + t0.elapsed().as_secs_f64());
        self.run.append_line(RunDir::METRICS_JSONL, &row.json())?;
        self.run.write_metrics_csv()?;
        if self.opts.verbose {
            println!("{}", epoch_line(&row, cfg.train.epochs));
        }
        // After the epoch's metrics (D&R re-learns here, as the official loop does after its
        // evaluation), before the end-of-epoch checkpoint, which therefore holds the result.
        let mut ctx = step_context(self.model, opt, cfg, epoch, steps_per_epoch, steps_per_epoch, self.step);
        method.after_evaluation(&mut ctx, self.data)?;
        Ok(EpochEnd::Finished(row))
    }

    /// The error that stops a run on a non-finite loss or gradient.
    fn non_finite(&self, what: &str, detail: &str, epoch: usize, i: usize, steps_per_epoch: usize) -> CliError {
        let dir = self.run.target().display();
        let (kept, next) = match &self.last_checkpoint {
            Some(at) => (
                format!("the last good checkpoint ({at}) is kept in {dir}/{}", RunDir::CHECKPOINT),
                format!("`dgl train --resume {dir} --skip-non-finite` continues from the checkpoint"),
            ),
            None if self.run.replacing() => (
                format!("no checkpoint was written yet, so the run in {dir} was not replaced and is kept as it was"),
                "start the new run again with it".to_string(),
            ),
            None => ("no checkpoint was written yet".to_string(), "start the run again with it".to_string()),
        };
        CliError::NonFinite(format!(
            "training stopped: non-finite {what} in epoch {}/{} at step {}/{steps_per_epoch} (global step {}): {detail}; {kept}. \
             Lower the learning rate, or skip such steps with --skip-non-finite (train.skip_non_finite = true); {next}",
            epoch + 1,
            self.cfg.train.epochs,
            i + 1,
            self.step
        ))
    }

    /// The error returned after a requested stop, once the checkpoint is written.
    fn interrupted(&self, at: &str) -> CliError {
        let dir = self.run.target().display();
        CliError::Interrupted(format!(
            "interrupted {at}: checkpoint written to {dir}/{}; continue exactly where it stopped with `dgl train --resume {dir}`",
            RunDir::CHECKPOINT
        ))
    }

    /// The gradient-source diagnostic on a training-mode forward whose BatchNorm statistics updates
    /// are undone afterwards, so measuring never changes the run.
    fn gradient_sources(&self, x: &[Tensor], y: &Tensor) -> Result<Vec<dgl_core::diagnostics::GradientSources>> {
        let state = self.model.state_vars();
        let saved = snapshot(&state)?;
        let z = self.model.encode_all(x, true)?;
        let s = gradient_sources(self.model, &z, y, &CrossEntropy)?;
        restore(&state, &saved)?;
        Ok(s)
    }

    /// Writes the checkpoint (atomically): `epoch` completed epochs, plus `progress` inside the
    /// next one. The metrics files are flushed first and their lengths recorded.
    fn checkpoint(
        &mut self,
        method: &dyn Method,
        opt: &Optimizer,
        epoch: usize,
        progress: Option<EpochProgress>,
    ) -> Result<()> {
        let mut t: HashMap<String, Tensor> = HashMap::new();
        for v in self.model.state_vars() {
            t.insert(v.name.clone(), v.var.as_tensor().clone());
        }
        for (k, v) in opt.state()? {
            t.insert(format!("{OPTIMIZER_PREFIX}{k}"), v);
        }
        for (k, v) in method.state()? {
            t.insert(format!("{METHOD_PREFIX}{k}"), v);
        }
        t.insert("meta.epoch".into(), Tensor::new(&[epoch as u32], &Device::Cpu)?);
        let mut files = BTreeMap::new();
        for name in RunDir::APPENDED {
            self.run.sync_file(name)?;
            files.insert(name.to_string(), self.run.file_len(name)?);
        }
        let meta = CheckpointMeta::new(self.cfg, epoch, self.step, progress, files)?;
        let position = meta.position();
        if self.pending_config {
            // Before the checkpoint: a crash between the two leaves the configuration of the
            // resume in progress, which the same `--resume` command accepts.
            self.run.write_atomic(RunDir::CONFIG, self.cfg.to_toml()?.as_bytes())?;
            self.pending_config = false;
        }
        Checkpoint { meta, tensors: t }.save(&self.run.file(RunDir::CHECKPOINT))?;
        self.last_checkpoint = Some(position);
        // A new run replacing an old one takes its place with its first checkpoint.
        self.run.commit()
    }
}

/// What a method sees of the loop at one step (or at the end of an epoch: step = steps per epoch).
fn step_context<'a>(
    model: &'a Model,
    optimizer: &'a mut Optimizer,
    cfg: &TrainConfig,
    epoch: usize,
    step_in_epoch: usize,
    steps_per_epoch: usize,
    global_step: u64,
) -> StepContext<'a> {
    StepContext {
        model,
        optimizer,
        clip_norm: cfg.train.clip_norm,
        loss: &CrossEntropy,
        epoch,
        step_in_epoch,
        steps_per_epoch,
        global_step,
    }
}

/// Accuracy of the multimodal prediction and of every branch over a whole split (eval mode, every
/// sample, no dropped batch).
pub fn evaluate(
    method: &dyn Method,
    model: &dyn MultimodalModel,
    data: &RunData,
    ds: &dyn Dataset,
) -> Result<Vec<(String, f64)>> {
    let batches = epoch_batches(ds.len(), data.batch_size, None, false);
    let mut total = 0usize;
    let mut mm = 0usize;
    let mut branches: Vec<(String, usize)> = Vec::new();
    for idx in &batches {
        let (x, y) = data.batch(ds, idx, Mode::Eval)?;
        let p = method.predict(model, &x)?;
        mm += correct(&p.multimodal, &y)?;
        for (name, l) in &p.branches {
            let c = correct(l, &y)?;
            match branches.iter_mut().find(|(n, _)| n == name) {
                Some(e) => e.1 += c,
                None => branches.push((name.clone(), c)),
            }
        }
        total += idx.len();
    }
    let mut out = vec![("acc".to_string(), mm as f64 / total.max(1) as f64)];
    for (n, c) in branches {
        out.push((format!("acc_{n}"), c as f64 / total.max(1) as f64));
    }
    Ok(out)
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

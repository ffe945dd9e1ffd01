//! The one training loop: a step driver ([`Loop`]) and its observers ([`crate::observe`]). Every
//! method goes through it; a method only says how a batch becomes parameter updates
//! (`dgl_core::Method`). Data flows one way: datasets → batches → method step → optimizer →
//! observers (metrics, diagnostics, evaluation, files, progress) → checkpoints.
//!
//! Runs never lose work (see docs/runs.md): a checkpoint is written atomically after every epoch
//! and, when [`RunControl::stop`] is raised (Ctrl-C), after the current step, with the position
//! inside the epoch; [`resume`] continues a run bit-identically on the CPU. A NaN / infinite loss
//! or gradient stops the run keeping the last checkpoint, or, with `train.skip_non_finite`, skips
//! the step.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use dgl_core::rng::Rng;
use dgl_core::{Method, MultimodalModel, Optimizer, StepContext, StepReport, Task};
use dgl_data::{epoch_batches, Mode};
use dgl_models::Model;

use crate::checkpoint::{self, check_compatible, Checkpoint, CheckpointMeta, EpochProgress, StepSnapshot};
use crate::config::TrainConfig;
use crate::data::RunData;
use crate::error::{CliError, Result};
use crate::methods::needs_validation;
use crate::observe::{
    EpochClock, EpochStats, EpochView, Evaluation, FigureDiagnostics, MetricsWriter, NonFiniteStep, Observer, Progress,
    StepCallback, StepPosition, StepTaken,
};
use crate::resume_check;
use crate::run_dir::{Row, RunDir};
use crate::setup::{setup, Setup};

pub use crate::observe::{epoch_line, evaluate, NONFINITE_TOTAL};
pub use dgl_core::task::correct;

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
    /// The task's headline metric: `acc` (classification) or `miou` (segmentation).
    pub score: &'static str,
    /// Names of the per-branch columns of that metric (`test_acc_audio`, `test_miou_depth`, …).
    pub branch_columns: Vec<String>,
}

impl RunOutcome {
    pub fn last(&self) -> &Row {
        self.epochs.last().expect("at least one epoch")
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
    // A new run loads `model.pretrained` into the fresh model; a resumed one restores every weight
    // from its checkpoint below instead.
    let Setup { cfg: effective, device, data, mut method, model, pretrained, task } =
        setup(cfg, cfg.device, needs_validation(cfg), ckpt.is_none())?;
    if let (Some(report), true) = (&pretrained, opts.verbose) {
        println!("{report}");
    }
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
            checkpoint::restore_into(
                &c,
                &run.file(RunDir::CHECKPOINT),
                &model,
                Some(&mut opt),
                method.as_mut(),
                &device,
            )?;
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
    let mut trainer = Loop {
        cfg,
        task: task.as_ref(),
        model: &model,
        data: &data,
        run,
        control,
        step,
        last_checkpoint,
        pending_config,
    };
    // The observers, in the order their columns appear: the figure diagnostics (their means join
    // the training metrics), evaluation; then the files, the progress display, the step callback.
    let mut diagnostics = FigureDiagnostics {
        model: &model,
        names: model.modality_names(),
        loss: task.loss(),
        every: cfg.train.diagnostics_every,
    };
    let mut evaluation = Evaluation;
    let mut writer = MetricsWriter;
    let mut progress_view = Progress::new(opts.progress, opts.verbose, cfg.train.epochs);
    let mut callback = control.on_step.as_ref().map(|h| StepCallback(&*h.0));
    let mut observers: Vec<&mut dyn Observer> =
        vec![&mut diagnostics, &mut evaluation, &mut writer, &mut progress_view];
    if let Some(c) = callback.as_mut() {
        observers.push(c);
    }
    for epoch in start_epoch..cfg.train.epochs {
        match trainer.epoch(method.as_mut(), &mut opt, &mut observers, epoch, progress.take())? {
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
    let score = if epochs.first().is_some_and(|r| r.get("test_miou").is_some()) { "miou" } else { "acc" };
    let prefix = format!("test_{score}_");
    let branch_columns = epochs
        .first()
        .map(|r| r.0.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    Ok(RunOutcome { epochs, score, branch_columns })
}

/// How an epoch ended.
enum EpochEnd {
    Finished(Row),
    /// Stopped on request after a step; the epoch's position and statistics so far.
    Interrupted(EpochProgress),
}

/// The step driver: runs the epochs' steps through the method and reports to the observers.
struct Loop<'a> {
    cfg: &'a TrainConfig,
    /// The labels, the loss and the metrics.
    task: &'a dyn Task,
    model: &'a Model,
    data: &'a RunData,
    run: RunDir,
    control: &'a RunControl,
    /// Steps taken over the whole run.
    step: u64,
    /// Where the last checkpoint written (or resumed from) stands, for messages.
    last_checkpoint: Option<String>,
    /// `config.toml` still describes the checkpoint resumed from; the resumed configuration is
    /// written with the next checkpoint.
    pending_config: bool,
}

/// What became of one step.
enum StepOutcome {
    Taken(StepReport),
    /// A non-finite loss or gradient; the model, optimizer and method are as before the step when
    /// the run skips such steps.
    NonFinite(NonFiniteStep),
}

/// A non-finite loss or gradient the method did not catch itself (every method checks its losses
/// before it applies an update; this also covers the reported gradient norm).
fn check_report(report: &StepReport) -> Option<NonFiniteStep> {
    let terms = || {
        let t: Vec<String> = report.losses.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("loss terms: {}", t.join(", "))
    };
    if let Some((name, v)) = report.losses.iter().find(|(_, v)| !v.is_finite()) {
        return Some(NonFiniteStep { what: "loss", detail: format!("{name} = {v} ({})", terms()) });
    }
    if !report.grad_norm.is_finite() {
        return Some(NonFiniteStep {
            what: "gradient",
            detail: format!("global gradient norm = {} ({})", report.grad_norm, terms()),
        });
    }
    None
}

impl Loop<'_> {
    /// What a method sees of the loop at a step (or at the end of an epoch: step = steps per
    /// epoch).
    fn context<'b>(&'b self, optimizer: &'b mut Optimizer, at: StepPosition) -> StepContext<'b> {
        StepContext {
            model: self.model,
            optimizer,
            clip_norm: self.cfg.train.clip_norm,
            loss: self.task.loss(),
            epoch: at.epoch,
            step_in_epoch: at.step_in_epoch,
            steps_per_epoch: at.steps_per_epoch,
            global_step: at.global_step,
        }
    }

    /// One step: the batch through the method, a non-finite result classified (and, when the run
    /// skips such steps, undone).
    fn step(
        &self,
        method: &mut dyn Method,
        opt: &mut Optimizer,
        at: StepPosition,
        x: &[Tensor],
        y: &Tensor,
    ) -> Result<StepOutcome> {
        let cfg = self.cfg;
        let saved = if cfg.train.skip_non_finite { Some(StepSnapshot::take(self.model, opt, method)?) } else { None };
        let mut ctx = self.context(opt, at);
        let non_finite = match method.train_step(&mut ctx, x, y) {
            Ok(report) => match check_report(&report) {
                None => return Ok(StepOutcome::Taken(report)),
                Some(nf) => nf,
            },
            Err(dgl_core::Error::NonFinite { what, detail, .. }) => NonFiniteStep { what, detail },
            Err(e) => return Err(e.into()),
        };
        if let Some(saved) = saved {
            saved.restore(self.model, opt, method)?;
        }
        Ok(StepOutcome::NonFinite(non_finite))
    }

    fn epoch(
        &mut self,
        method: &mut dyn Method,
        opt: &mut Optimizer,
        observers: &mut [&mut dyn Observer],
        epoch: usize,
        resume: Option<EpochProgress>,
    ) -> Result<EpochEnd> {
        let cfg = self.cfg;
        let scheduled = cfg.train.scheduler.at(cfg.train.optimizer.lr, epoch, cfg.train.epochs);
        opt.apply(scheduled);
        // A run resumed inside an epoch already ran the epoch-start hook before its checkpoint
        // (its effects are in the method state); running it again would change the run.
        let p = match resume {
            Some(p) => p,
            None => {
                method.on_epoch_start(self.model, epoch, self.data)?;
                EpochProgress::default()
            }
        };
        let (start, clock) = (p.step_in_epoch, EpochClock::start(p.elapsed_s));
        let mut stats = EpochStats::resume(p, cfg.train.skip_non_finite, self.task.labels());
        let epoch_seed = Rng::derive(cfg.seed, 1_000 + epoch as u64).next_u64();
        // Not empty, and `start` is inside it: checked before the run started (`resume_check`).
        let batches = epoch_batches(self.data.train.len(), cfg.train.batch_size, Some(epoch_seed), cfg.train.drop_last);
        let steps_per_epoch = batches.len();
        for o in observers.iter_mut() {
            o.epoch_started(epoch, steps_per_epoch, start)?;
        }
        for (i, idx) in batches.iter().enumerate().skip(start) {
            let at = StepPosition { epoch, step_in_epoch: i, steps_per_epoch, global_step: self.step };
            let (mut x, y) = self.data.batch(self.data.train.as_ref(), idx, Mode::Train { seed: epoch_seed })?;
            if self.control.inject_non_finite.as_ref().is_some_and(|r| r.contains(&self.step)) {
                x = x.iter().map(|t| t.affine(f64::NAN, 0.0)).collect::<candle_core::Result<_>>()?;
            }
            match self.step(method, opt, at, &x, &y)? {
                StepOutcome::Taken(report) => {
                    let taken = StepTaken { at, run: &self.run, inputs: &x, targets: &y, report: &report };
                    stats.record(&taken)?;
                    for o in observers.iter_mut() {
                        o.step_taken(&taken, &mut stats)?;
                    }
                }
                StepOutcome::NonFinite(nf) if cfg.train.skip_non_finite => {
                    stats.skipped += 1;
                    for o in observers.iter_mut() {
                        o.step_skipped(at, &nf);
                    }
                }
                StepOutcome::NonFinite(nf) => {
                    for o in observers.iter_mut() {
                        o.epoch_abandoned();
                    }
                    return Err(self.non_finite(&nf, at));
                }
            }
            self.step += 1;
            for o in observers.iter_mut() {
                o.step_finished(self.step);
            }
            if i + 1 < steps_per_epoch && self.control.stop_requested(self.step) {
                for o in observers.iter_mut() {
                    o.epoch_abandoned();
                }
                return Ok(EpochEnd::Interrupted(stats.progress(i + 1, clock.seconds())));
            }
        }
        let end = StepPosition { epoch, step_in_epoch: steps_per_epoch, steps_per_epoch, global_step: self.step };
        let mut ctx = self.context(opt, end);
        method.on_epoch_end(&mut ctx, self.data)?;

        let mut row = Row::default();
        row.push("epoch", (epoch + 1) as f64);
        row.push("lr", scheduled.lr);
        if let Some(m) = scheduled.momentum {
            // One-cycle: the momentum (SGD) or β1 (Adam) of this epoch.
            row.push("momentum", m);
        }
        stats.into_row(&mut row);
        let view = EpochView { task: self.task, method: &*method, model: self.model, data: self.data };
        for o in observers.iter_mut() {
            o.epoch_row(&view, &mut row)?;
        }
        row.push("seconds", clock.seconds());
        for o in observers.iter_mut() {
            o.epoch_finished(&row, &self.run)?;
        }
        // After the epoch's metrics (D&R re-learns here, as the official loop does after its
        // evaluation), before the end-of-epoch checkpoint, which therefore holds the result.
        let mut ctx = self.context(opt, end);
        method.after_evaluation(&mut ctx, self.data)?;
        Ok(EpochEnd::Finished(row))
    }

    /// The error that stops a run on a non-finite loss or gradient.
    fn non_finite(&self, nf: &NonFiniteStep, at: StepPosition) -> CliError {
        let dir = self.run.target().display();
        let (kept, next) = match &self.last_checkpoint {
            Some(pos) => (
                format!("the last good checkpoint ({pos}) is kept in {dir}/{}", RunDir::CHECKPOINT),
                format!("`dgl train --resume {dir} --skip-non-finite` continues from the checkpoint"),
            ),
            None if self.run.replacing() => (
                format!("no checkpoint was written yet, so the run in {dir} was not replaced and is kept as it was"),
                "start the new run again with it".to_string(),
            ),
            None => ("no checkpoint was written yet".to_string(), "start the run again with it".to_string()),
        };
        CliError::NonFinite(format!(
            "training stopped: non-finite {} in epoch {}/{} at step {}/{} (global step {}): {}; {kept}. \
             Lower the learning rate, or skip such steps with --skip-non-finite (train.skip_non_finite = true); {next}",
            nf.what,
            at.epoch + 1,
            self.cfg.train.epochs,
            at.step_in_epoch + 1,
            at.steps_per_epoch,
            at.global_step,
            nf.detail
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

    /// Writes the checkpoint (atomically): `epoch` completed epochs, plus `progress` inside the
    /// next one. The metrics files are flushed first and their lengths recorded.
    fn checkpoint(
        &mut self,
        method: &dyn Method,
        opt: &Optimizer,
        epoch: usize,
        progress: Option<EpochProgress>,
    ) -> Result<()> {
        let mut t = checkpoint::capture(self.model, opt, method)?;
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

//! The one training loop. Every method goes through it; a method only says how a batch becomes
//! parameter updates (`dgl_core::Method`). Data flows one way: datasets → batches → method step →
//! optimizer → metrics / checkpoints.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor, D};
use dgl_core::diagnostics::{gradient_sources, s_statistic};
use dgl_core::loss::CrossEntropy;
use dgl_core::method::{restore, snapshot};
use dgl_core::rng::Rng;
use dgl_core::{Method, MultimodalModel, Sgd, StepContext};
use dgl_data::{epoch_batches, Dataset, Mode};
use dgl_models::{build_model, Model};

use crate::config::{DeviceKind, TrainConfig};
use crate::data::RunData;
use crate::error::{CliError, Result};
use crate::methods::{build_method, needs_validation, BuiltMethod};
use crate::run_dir::{RunDir, Row};

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

/// The result of a finished run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Per-epoch metrics, as written to `metrics.jsonl`.
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

/// Trains one configuration into `out`.
pub fn train(cfg: &TrainConfig, out: &Path, opts: &RunOptions) -> Result<RunOutcome> {
    cfg.validate()?;
    let device = device(cfg.device)?;
    let mut data = RunData::build(cfg, needs_validation(cfg), &device)?;
    let BuiltMethod { mut method, unimodal } = build_method(cfg, data.train.num_classes())?;
    let mut model_cfg = match unimodal {
        Some(i) => {
            let name = data
                .train
                .modality_names()
                .get(i)
                .cloned()
                .ok_or_else(|| CliError::Config(format!("the dataset has no modality #{i}")))?;
            data.select_modality(&name)?;
            cfg.model.unimodal(&name).ok_or_else(|| CliError::Config(format!("the model has no `{name}` modality")))?
        }
        None => cfg.model.clone(),
    };
    model_cfg.num_classes = data.train.num_classes();
    if model_cfg.modalities.iter().map(|m| &m.name).ne(data.modality_names().iter()) {
        return Err(CliError::Config(format!(
            "model modalities {:?} do not match the dataset's {:?}",
            model_cfg.modalities.iter().map(|m| &m.name).collect::<Vec<_>>(),
            data.modality_names()
        )));
    }
    let model = build_model(&model_cfg, &data.modality_shapes(), &device, cfg.seed)?;
    method.check(&model)?;

    let run = RunDir::create(out, opts.overwrite)?;
    run.write_atomic(RunDir::CONFIG, cfg.to_toml()?.as_bytes())?;

    let mut opt = Sgd::new(cfg.train.optimizer.clone())?;
    let mut trainer = Loop { cfg, model: &model, data: &data, run: &run, opts, step: 0 };
    let mut epochs = Vec::new();
    for epoch in 0..cfg.train.epochs {
        let row = trainer.epoch(method.as_mut(), &mut opt, epoch)?;
        epochs.push(row);
        trainer.checkpoint(method.as_ref(), &opt, epoch)?;
    }
    let branch_columns = epochs[0].0.iter().filter(|(k, _)| k.starts_with("test_acc_")).map(|(k, _)| k.clone()).collect();
    Ok(RunOutcome { epochs, branch_columns })
}

struct Loop<'a> {
    cfg: &'a TrainConfig,
    model: &'a Model,
    data: &'a RunData,
    run: &'a RunDir,
    opts: &'a RunOptions,
    step: u64,
}

/// Running means of named scalars over an epoch.
#[derive(Default)]
struct Means(Vec<(String, f64, usize)>);

impl Means {
    fn add(&mut self, k: &str, v: f64) {
        if !v.is_finite() {
            return;
        }
        match self.0.iter_mut().find(|(n, _, _)| n == k) {
            Some(e) => {
                e.1 += v;
                e.2 += 1;
            }
            None => self.0.push((k.to_string(), v, 1)),
        }
    }
    fn into_row(self, row: &mut Row) {
        for (k, s, n) in self.0 {
            row.push(k, s / n as f64);
        }
    }
}

/// Number of correct argmax predictions.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred.eq(labels)?.to_dtype(candle_core::DType::F32)?.sum_all()?.to_scalar::<f32>()? as usize)
}

impl Loop<'_> {
    fn epoch(&mut self, method: &mut dyn Method, opt: &mut Sgd, epoch: usize) -> Result<Row> {
        let cfg = self.cfg;
        let t0 = Instant::now();
        let lr = cfg.train.scheduler.lr_at(cfg.train.optimizer.lr, epoch);
        opt.set_lr(lr);
        method.on_epoch_start(self.model, epoch, self.data)?;
        let epoch_seed = Rng::derive(cfg.seed, 1_000 + epoch as u64).next_u64();
        let batches = epoch_batches(self.data.train.len(), cfg.train.batch_size, Some(epoch_seed), cfg.train.drop_last);
        if batches.is_empty() {
            return Err(CliError::Config(format!(
                "the training set ({} samples) is smaller than one batch ({}) with drop_last",
                self.data.train.len(),
                cfg.train.batch_size
            )));
        }
        let pb = progress_bar(self.opts.progress, batches.len() as u64, epoch, cfg.train.epochs);
        let names = self.model.modality_names();
        let mut means = Means::default();
        let (mut n_seen, mut n_correct) = (0usize, 0usize);
        let steps_per_epoch = batches.len();
        for (i, idx) in batches.iter().enumerate() {
            let (x, y) = self.data.batch(self.data.train.as_ref(), idx, Mode::Train { seed: epoch_seed })?;
            let mut ctx = StepContext {
                model: self.model,
                optimizer: opt,
                clip_norm: cfg.train.clip_norm,
                loss: &CrossEntropy,
                epoch,
                step_in_epoch: i,
                steps_per_epoch,
                global_step: self.step,
            };
            let report = method.train_step(&mut ctx, &x, &y)?;
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
            if cfg.train.diagnostics_every > 0 && names.len() >= 2 && self.step % cfg.train.diagnostics_every as u64 == 0 {
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
            self.step += 1;
            pb.inc(1);
        }
        pb.finish_and_clear();
        let mut ctx = StepContext {
            model: self.model,
            optimizer: opt,
            clip_norm: cfg.train.clip_norm,
            loss: &CrossEntropy,
            epoch,
            step_in_epoch: steps_per_epoch,
            steps_per_epoch,
            global_step: self.step,
        };
        method.on_epoch_end(&mut ctx, self.data)?;

        let mut row = Row::default();
        row.push("epoch", (epoch + 1) as f64);
        row.push("lr", lr);
        means.into_row(&mut row);
        if n_seen > 0 {
            row.push("train_acc", n_correct as f64 / n_seen as f64);
        }
        if let Some(val) = &self.data.validation {
            for (k, v) in evaluate(method, self.model, self.data, val.as_ref())? {
                row.push(format!("val_{k}"), v);
            }
        }
        for (k, v) in evaluate(method, self.model, self.data, self.data.test.as_ref())? {
            row.push(format!("test_{k}"), v);
        }
        row.push("seconds", t0.elapsed().as_secs_f64());
        if epoch == 0 {
            self.run.append_line(RunDir::METRICS_CSV, &row.header())?;
        }
        self.run.append_line(RunDir::METRICS_CSV, &row.csv())?;
        self.run.append_line(RunDir::METRICS_JSONL, &row.json())?;
        if self.opts.verbose {
            println!("{}", epoch_line(&row, cfg.train.epochs));
        }
        Ok(row)
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

    fn checkpoint(&self, method: &dyn Method, opt: &Sgd, epoch: usize) -> Result<()> {
        let mut t: HashMap<String, Tensor> = HashMap::new();
        for v in self.model.state_vars() {
            t.insert(v.name.clone(), v.var.as_tensor().clone());
        }
        for (k, v) in opt.state() {
            t.insert(format!("optimizer.momentum_buffer.{k}"), v);
        }
        for (k, v) in method.state()? {
            t.insert(format!("method.{k}"), v);
        }
        t.insert("meta.epoch".into(), Tensor::new(&[(epoch + 1) as u32], &Device::Cpu)?);
        self.run.save_tensors(RunDir::CHECKPOINT, &t)
    }
}

/// Accuracy of the multimodal prediction and of every branch over a whole split (eval mode, every
/// sample, no dropped batch).
pub fn evaluate(method: &dyn Method, model: &dyn MultimodalModel, data: &RunData, ds: &dyn Dataset) -> Result<Vec<(String, f64)>> {
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

//! `dgl eval RUN_DIR`: the evaluation report of a trained run, beyond the per-epoch accuracies.
//!
//! On the test split, from the run's checkpoint:
//!
//! * **accuracy and macro-F1** of the multimodal prediction and of every branch (the method's own
//!   `predict`; for the fusion methods a branch is the shared head with the other modalities zeroed);
//! * **modality contributions**: the accuracy `v(S)` of the fusion head with the features of the
//!   modalities outside `S` zeroed, for every subset `S`, and the Shapley value of each modality,
//!   `φ_m = Σ_{S ∌ m} |S|!(M−|S|−1)!/M! · (v(S ∪ {m}) − v(S))` — the imbalance axis of BalanceMM
//!   (arXiv 2502.10816); the values add up to `v(all) − v(∅)`. Exact up to [`SHAPLEY_EXACT_MAX`]
//!   modalities; beyond, estimated from [`SHAPLEY_PERMUTATIONS`] random orders ([`ShapleyPlan`]),
//!   so the work stays linear in the number of modalities;
//! * **robustness** (MultiBench-style): the multimodal accuracy when one modality's input is zeroed or
//!   gets Gaussian noise of `σ` times that input's standard deviation over the batch (seeded);
//! * **linear probes** (`--probe`): for each encoder, and for all features concatenated, a linear
//!   classifier fitted on the frozen, standardised training-split features (ridge least squares on
//!   one-hot targets, λ = 1e-3 · mean eigenvalue, solved exactly by Cholesky) and scored on the test
//!   split — how much class information each encoder carries, whatever the head does with it. A
//!   least-squares probe ranks encoders like the usual logistic-regression probe but its absolute
//!   accuracy is typically a little lower.
//!
//! Writes `RUN_DIR/eval.json` and `RUN_DIR/eval.md`. A segmentation run gets the same questions in
//! mIoU ([`SegmentationReport`], `eval/segmentation.rs`); [`evaluate`] returns either.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use dgl_core::rng::Rng;
use dgl_core::task::{Accuracy, Labels, Metric};
use dgl_core::MultimodalModel;
use dgl_data::{epoch_batches, Dataset, Mode};
use serde::Serialize;

use crate::checkpoint::restore_into;
use crate::checkpoint::Checkpoint;
use crate::config::{ClassWeights, DeviceKind};
use crate::data::RunData;
use crate::run_dir::RunDir;
use crate::setup::{setup, Setup};
use crate::{CliError, Result};

mod segmentation;
pub use segmentation::{HeadIou, RobustnessIou, SegmentationReport, SubsetIou};

/// What `dgl eval` computes besides accuracy and F1.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Noise levels σ (in units of the input's standard deviation) for the robustness table.
    pub noise: Vec<f64>,
    /// Fit linear probes on the frozen encoders.
    pub probe: bool,
    /// Device override (default: the run's).
    pub device: Option<DeviceKind>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { noise: vec![0.5, 1.0, 2.0], probe: false, device: None }
    }
}

/// Accuracy and macro-F1 of one prediction head.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub name: String,
    pub accuracy: f64,
    /// Mean over the classes present in the labels or the predictions of 2TP / (2TP + FP + FN)
    /// (scikit-learn's `f1_score(average="macro")`).
    pub macro_f1: f64,
}

/// The fusion head's accuracy with only `modalities` present.
#[derive(Clone, Debug, Serialize)]
pub struct Subset {
    pub modalities: Vec<String>,
    pub accuracy: f64,
}

/// One modality's Shapley value (accuracy points) and its share of the total.
#[derive(Clone, Debug, Serialize)]
pub struct Contribution {
    pub modality: String,
    pub shapley: f64,
    /// Standard error of a sampled estimate (more than [`SHAPLEY_EXACT_MAX`] modalities); 0 when
    /// exact.
    pub shapley_stderr: f64,
    pub share: f64,
}

/// Multimodal accuracy under one corruption of one modality.
#[derive(Clone, Debug, Serialize)]
pub struct Robustness {
    pub modality: String,
    /// `zeroed` or `noise σ=…`.
    pub corruption: String,
    pub accuracy: f64,
}

/// One linear probe.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// A modality, or `all` (the features concatenated).
    pub features: String,
    pub dim: usize,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
}

/// The report `dgl eval` writes.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub run: String,
    pub method: String,
    pub dataset: String,
    /// Where the checkpoint stands (`after epoch 12`, …).
    pub checkpoint: String,
    pub test_samples: usize,
    /// Trainable parameters per encoder (by modality), of the head, and in total.
    pub parameters: Vec<(String, usize)>,
    pub scores: Vec<Scores>,
    pub subsets: Vec<Subset>,
    /// `exact`, or `sampled (N random orders)` beyond [`SHAPLEY_EXACT_MAX`] modalities.
    pub shapley_method: String,
    pub contributions: Vec<Contribution>,
    pub robustness: Vec<Robustness>,
    pub probes: Vec<Probe>,
}

/// Accuracy and macro-F1 of `pred` against `labels` (`classes` classes, more if a prediction or
/// label is out of that range — e.g. the official Kinetics-Sounds head's dead 34th logit).
pub fn scores(name: &str, pred: &[u32], labels: &[u32], classes: usize) -> Scores {
    let classes = pred.iter().chain(labels).map(|&v| v as usize + 1).max().unwrap_or(0).max(classes);
    let mut tp = vec![0usize; classes];
    let mut fp = vec![0usize; classes];
    let mut fn_ = vec![0usize; classes];
    for (&p, &y) in pred.iter().zip(labels) {
        let (p, y) = (p as usize, y as usize);
        if p == y {
            tp[y] += 1;
        } else {
            fp[p] += 1;
            fn_[y] += 1;
        }
    }
    let present: Vec<usize> = (0..classes).filter(|&c| tp[c] + fp[c] + fn_[c] > 0).collect();
    let f1 = present.iter().map(|&c| 2.0 * tp[c] as f64 / (2 * tp[c] + fp[c] + fn_[c]) as f64).sum::<f64>()
        / present.len().max(1) as f64;
    let correct: usize = tp.iter().sum();
    Scores { name: name.into(), accuracy: correct as f64 / labels.len().max(1) as f64, macro_f1: f1 }
}

/// Shapley values from the accuracies `v[mask]` of every subset (bit m set = modality m present).
pub fn shapley(v: &[f64], m: usize) -> Vec<f64> {
    let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    (0..m)
        .map(|i| {
            (0..1usize << m)
                .filter(|s| s & (1 << i) == 0)
                .map(|s| {
                    let k = s.count_ones() as usize;
                    fact(k) * fact(m - k - 1) / fact(m) * (v[s | (1 << i)] - v[s])
                })
                .sum()
        })
        .collect()
}

/// Up to this many modalities the Shapley values are exact: every one of the 2^M subsets is
/// evaluated (1024 at M = 10).
pub const SHAPLEY_EXACT_MAX: usize = 10;

/// Beyond [`SHAPLEY_EXACT_MAX`] modalities, the number of random orders of the modalities the
/// Shapley values are estimated from: at most `SHAPLEY_PERMUTATIONS · (M − 1) + 2` subsets are
/// evaluated, linear in M. Each φ_m is then the mean of `SHAPLEY_PERMUTATIONS` marginal
/// contributions in [−1, 1], so by Hoeffding's inequality it is within ±0.086 (8.6 accuracy points)
/// of the exact value with probability ≥ 95 % (`2·exp(−P·t²/2) = 0.05` at P = 1000); the report
/// also gives each estimate's standard error, usually far smaller.
pub const SHAPLEY_PERMUTATIONS: usize = 1000;

/// The subsets of modalities whose accuracy the Shapley values need, and how to combine them:
/// all 2^M subsets up to [`SHAPLEY_EXACT_MAX`] modalities, else the prefixes of
/// [`SHAPLEY_PERMUTATIONS`] seeded random orders (the permutation estimator of Castro et al.,
/// 2009: φ_m is the mean over orders of v(modalities before m, and m) − v(modalities before m)).
/// A sampled plan keeps the orders and one index per prefix (memory O(P·M)); a subset that
/// several orders share is evaluated once.
pub struct ShapleyPlan {
    m: usize,
    /// The subsets to evaluate. Sampled: ∅, each single modality, all of them, then the other
    /// prefixes.
    subsets: Vec<SubsetOf>,
    /// Sampled: the orders of the modalities.
    orders: Vec<Vec<usize>>,
    /// Sampled: per order, the position of each modality in it.
    positions: Vec<Vec<usize>>,
    /// Sampled: per order, the index in `subsets` of each of its M + 1 prefixes (∅ first).
    prefixes: Vec<Vec<usize>>,
}

/// One subset of a [`ShapleyPlan`].
#[derive(Clone, Copy)]
enum SubsetOf {
    /// Bit i set = modality i present (exact plans).
    Mask(usize),
    Single(usize),
    All,
    /// The first `len` modalities of order `order`.
    Prefix {
        order: usize,
        len: usize,
    },
}

impl ShapleyPlan {
    /// The plan for `m` modalities; the sampled orders derive from `seed`.
    pub fn new(m: usize, seed: u64) -> Self {
        let mut plan = Self { m, subsets: Vec::new(), orders: Vec::new(), positions: Vec::new(), prefixes: Vec::new() };
        if m <= SHAPLEY_EXACT_MAX {
            plan.subsets = (0..1usize << m).map(SubsetOf::Mask).collect();
            return plan;
        }
        // Subsets are told apart by a random 64-bit code per modality, XOR-ed over the members
        // (Zobrist hashing: two of the ≤ 10⁶ subsets share a code with probability < 10⁻⁷).
        let mut rng = Rng::new(seed);
        let code: Vec<u64> = (0..m).map(|_| rng.next_u64()).collect();
        let mut index: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        let mut add = |key: u64, s: SubsetOf, subsets: &mut Vec<SubsetOf>| {
            *index.entry(key).or_insert_with(|| {
                subsets.push(s);
                subsets.len() - 1
            })
        };
        add(0, SubsetOf::Prefix { order: 0, len: 0 }, &mut plan.subsets);
        for (i, c) in code.iter().enumerate() {
            add(*c, SubsetOf::Single(i), &mut plan.subsets);
        }
        add(code.iter().fold(0, |a, c| a ^ c), SubsetOf::All, &mut plan.subsets);
        for o in 0..SHAPLEY_PERMUTATIONS {
            let mut order: Vec<usize> = (0..m).collect();
            rng.shuffle(&mut order);
            let mut position = vec![0; m];
            let mut key = 0u64;
            let mut prefixes = vec![0];
            for (k, &i) in order.iter().enumerate() {
                position[i] = k;
                key ^= code[i];
                prefixes.push(add(key, SubsetOf::Prefix { order: o, len: k + 1 }, &mut plan.subsets));
            }
            plan.orders.push(order);
            plan.positions.push(position);
            plan.prefixes.push(prefixes);
        }
        plan
    }

    /// Whether the values are estimated from sampled orders (more than [`SHAPLEY_EXACT_MAX`]
    /// modalities).
    pub fn sampled(&self) -> bool {
        !self.orders.is_empty()
    }

    /// How many subsets the plan evaluates: 2^M, or at most `SHAPLEY_PERMUTATIONS · (M − 1) + 2`.
    pub fn len(&self) -> usize {
        self.subsets.len()
    }

    /// Whether the plan has no subset (never: ∅ is always one).
    pub fn is_empty(&self) -> bool {
        self.subsets.is_empty()
    }

    /// Whether modality `i` is present in subset `j`.
    pub fn present(&self, j: usize, i: usize) -> bool {
        match self.subsets[j] {
            SubsetOf::Mask(mask) => mask & (1 << i) != 0,
            SubsetOf::Single(s) => s == i,
            SubsetOf::All => true,
            SubsetOf::Prefix { order, len } => len > 0 && self.positions[order][i] < len,
        }
    }

    /// Subset `j` (`true` = the modality is present).
    pub fn subset(&self, j: usize) -> Vec<bool> {
        (0..self.m).map(|i| self.present(j, i)).collect()
    }

    /// The Shapley value of every modality from the accuracies `v` of the plan's subsets (in
    /// order), and the standard error of each (0 when exact). Both ways, the values add up to
    /// v(all) − v(∅).
    pub fn values(&self, v: &[f64]) -> (Vec<f64>, Vec<f64>) {
        if !self.sampled() {
            return (shapley(v, self.m), vec![0.0; self.m]);
        }
        let (mut sum, mut sq) = (vec![0.0; self.m], vec![0.0; self.m]);
        for (order, prefixes) in self.orders.iter().zip(&self.prefixes) {
            for (k, &i) in order.iter().enumerate() {
                let d = v[prefixes[k + 1]] - v[prefixes[k]];
                sum[i] += d;
                sq[i] += d * d;
            }
        }
        let p = self.orders.len() as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / p).collect();
        let se = sq.iter().zip(&mean).map(|(q, mu)| ((q / p - mu * mu).max(0.0) * p / (p - 1.0) / p).sqrt()).collect();
        (mean, se)
    }

    /// The subsets the report lists: all of them when exact; ∅, each single modality and all of
    /// them when sampled.
    pub fn reported(&self) -> std::ops::Range<usize> {
        if self.sampled() {
            0..self.m + 2
        } else {
            0..self.subsets.len()
        }
    }
}

/// How many predictions equal their labels.
fn hits(pred: &[u32], labels: &[u32]) -> usize {
    pred.iter().zip(labels).filter(|(a, b)| a == b).count()
}

/// `x + σ·std(x)·ε`, ε ~ N(0, 1) from `rng`.
fn with_noise(x: &Tensor, sigma: f64, rng: &mut Rng) -> Result<Tensor> {
    let xf = x.to_dtype(DType::F64)?;
    let n = x.elem_count() as f64;
    let mean = xf.sum_all()?.to_scalar::<f64>()? / n;
    let var = (xf.sqr()?.sum_all()?.to_scalar::<f64>()? / n - mean * mean).max(0.0);
    let scale = sigma * var.sqrt();
    let eps: Vec<f32> = (0..x.elem_count()).map(|_| (scale * rng.normal()) as f32).collect();
    let eps = Tensor::from_vec(eps, x.shape(), &Device::Cpu)?.to_dtype(x.dtype())?.to_device(x.device())?;
    Ok((x + eps)?)
}

/// A checkpointed run, rebuilt for evaluation: its checkpoint, the model and method restored from
/// it, the data. The training split's class weights are not computed (evaluation has no loss).
pub(crate) struct Restored {
    pub ckpt: Checkpoint,
    pub setup: Setup,
}

/// Opens the checkpoint of the run in `dir` and restores its model and method state.
pub(crate) fn restore_run(dir: &Path, device: Option<DeviceKind>, what: &str) -> Result<Restored> {
    let path = dir.join(RunDir::CHECKPOINT);
    if !path.is_file() {
        return Err(CliError::Run(format!("{what} {}: no checkpoint ({}) in it", dir.display(), RunDir::CHECKPOINT)));
    }
    let ckpt = Checkpoint::load(&path)?;
    let mut saved = ckpt.meta.config()?;
    saved.train.class_weights = ClassWeights::None;
    let mut setup = setup(&saved, device.unwrap_or(saved.device), false, false)?;
    restore_into(&ckpt, &path, &setup.model, None, setup.method.as_mut(), &setup.device)?;
    Ok(Restored { ckpt, setup })
}

/// What `dgl eval` wrote: a classification report, or a segmentation report.
#[derive(Clone, Debug)]
pub enum Evaluation {
    Classification(EvalReport),
    Segmentation(SegmentationReport),
}

impl Evaluation {
    /// The report as Markdown (what `eval.md` holds).
    pub fn markdown(&self) -> String {
        match self {
            Evaluation::Classification(r) => r.markdown(),
            Evaluation::Segmentation(r) => r.markdown(),
        }
    }
}

/// Evaluates the run in `dir` — a classification run ([`EvalReport`], the module doc) or a
/// segmentation run ([`SegmentationReport`]) — and writes `eval.json` / `eval.md` there.
pub fn evaluate(dir: &Path, opts: &EvalOptions) -> Result<Evaluation> {
    if let Some(bad) = opts.noise.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(CliError::Config(format!("--noise levels must be positive numbers, got {bad}")));
    }
    let restored = restore_run(dir, opts.device, "dgl eval")?;
    let (json, evaluation) = match restored.setup.task.labels() {
        Labels::ClassPerSample => {
            let r = classification_report(dir, restored, opts)?;
            (serde_json::to_string_pretty(&r), Evaluation::Classification(r))
        }
        Labels::DenseMap { ignore } => {
            let r = segmentation::report(dir, restored, opts, ignore)?;
            (serde_json::to_string_pretty(&r), Evaluation::Segmentation(r))
        }
    };
    let json = json.map_err(|e| CliError::Run(format!("eval.json: {e}")))?;
    let run = RunDir::open(dir)?;
    run.write_atomic(RunDir::EVAL_JSON, json.as_bytes())?;
    run.write_atomic(RunDir::EVAL_MD, evaluation.markdown().as_bytes())?;
    Ok(evaluation)
}

/// [`evaluate`], returning a classification run's report; for a segmentation run, whose report
/// [`evaluate`] has then written, an error saying to call [`evaluate`] for it.
pub fn eval_run(dir: &Path, opts: &EvalOptions) -> Result<EvalReport> {
    match evaluate(dir, opts)? {
        Evaluation::Classification(r) => Ok(r),
        Evaluation::Segmentation(_) => Err(CliError::Run(format!(
            "{}: a segmentation run; its report (mIoU, per-class IoU) is `dgl_cli::eval::evaluate`'s",
            dir.display()
        ))),
    }
}

/// The corruptions of the robustness table: `None` = the input zeroed, `Some(σ)` = Gaussian noise.
fn corruptions(opts: &EvalOptions) -> Vec<Option<f64>> {
    std::iter::once(None).chain(opts.noise.iter().map(|&s| Some(s))).collect()
}

fn corruption_name(c: Option<f64>) -> String {
    match c {
        None => "zeroed".into(),
        Some(s) => format!("noise σ={s}"),
    }
}

/// The test split scored once: every prediction head of the method, every subset of modalities
/// through the fusion head (absent ones' features zeroed), every corruption of every modality's
/// input. `H` scores the heads, `S` the subsets and corruptions.
struct TestPass<H, S> {
    heads: Vec<(String, H)>,
    /// One per subset of the plan (empty for a one-modality model).
    subsets: Vec<S>,
    /// `robustness[i · corruptions + k]`: modality i under corruption k (empty for one modality).
    robustness: Vec<S>,
}

fn test_pass<H: Metric, S: Metric>(
    r: &Restored,
    plan: &ShapleyPlan,
    corruptions: &[Option<f64>],
    head: impl Fn() -> H,
    score: impl Fn() -> S,
) -> Result<TestPass<H, S>> {
    let Setup { cfg, data, method, model, .. } = &r.setup;
    let names = model.modality_names();
    let m = model.num_modalities();
    let fusion = m >= 2;
    let mut pass = TestPass {
        heads: Vec::new(),
        subsets: if fusion { (0..plan.len()).map(|_| score()).collect() } else { Vec::new() },
        robustness: if fusion { (0..m * corruptions.len()).map(|_| score()).collect() } else { Vec::new() },
    };
    let mut rng = Rng::new(cfg.seed ^ 0x5eed_e7a1);
    for idx in epoch_batches(data.test.len(), data.batch_size, None, false) {
        let (x, y) = data.batch(data.test.as_ref(), &idx, Mode::Eval)?;
        let p = method.predict(model, &x)?;
        // A unimodal model's only prediction is named after its modality.
        let multimodal = if fusion { "multimodal" } else { names[0].as_str() };
        for (name, logits) in
            std::iter::once((multimodal, &p.multimodal)).chain(p.branches.iter().map(|(n, l)| (n.as_str(), l)))
        {
            let i = match pass.heads.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    pass.heads.push((name.to_string(), head()));
                    pass.heads.len() - 1
                }
            };
            pass.heads[i].1.update(logits, &y)?;
        }
        if fusion {
            let z: Vec<Tensor> =
                (0..m).map(|i| Ok(model.encode(i, &x[i], false)?.detach())).collect::<Result<Vec<_>>>()?;
            let zero: Vec<Tensor> = z.iter().map(|t| t.zeros_like()).collect::<candle_core::Result<_>>()?;
            for (j, s) in pass.subsets.iter_mut().enumerate() {
                let zs: Vec<Tensor> =
                    (0..m).map(|i| if plan.present(j, i) { z[i].clone() } else { zero[i].clone() }).collect();
                s.update(&model.fuse(&zs, false)?, &y)?;
            }
            for i in 0..m {
                for (k, corr) in corruptions.iter().enumerate() {
                    let mut xc = x.clone();
                    xc[i] = match corr {
                        None => x[i].zeros_like()?,
                        Some(s) => with_noise(&x[i], *s, &mut rng)?,
                    };
                    pass.robustness[i * corruptions.len() + k].update(&method.predict(model, &xc)?.multimodal, &y)?;
                }
            }
        }
    }
    Ok(pass)
}

impl<H, S: Metric> TestPass<H, S> {
    /// The score `key` of every subset, in the plan's order.
    fn subset_scores(&self, key: &str) -> Vec<f64> {
        self.subsets.iter().map(|s| value(s, key)).collect()
    }

    /// The subsets the report lists (none for one modality): their modalities' names and score.
    fn reported_subsets<'a>(
        &'a self,
        plan: &'a ShapleyPlan,
        names: &'a [String],
        v: &'a [f64],
    ) -> impl Iterator<Item = (Vec<String>, f64)> + 'a {
        let range = if self.subsets.is_empty() { 0..0 } else { plan.reported() };
        range.map(move |j| ((0..names.len()).filter(|&i| plan.present(j, i)).map(|i| names[i].clone()).collect(), v[j]))
    }

    /// (modality, corruption, score `key`) of every corrupted input.
    fn robustness_rows<'a>(
        &'a self,
        names: &'a [String],
        corruptions: &'a [Option<f64>],
        key: &'a str,
    ) -> impl Iterator<Item = (String, String, f64)> + 'a {
        self.robustness.iter().enumerate().map(move |(j, s)| {
            let (i, k) = (j / corruptions.len(), j % corruptions.len());
            (names[i].clone(), corruption_name(corruptions[k]), value(s, key))
        })
    }
}

/// One head's predictions and labels (classification), for accuracy and macro-F1.
#[derive(Default)]
struct Predictions {
    pred: Vec<u32>,
    labels: Vec<u32>,
}

impl Metric for Predictions {
    fn update(&mut self, logits: &Tensor, targets: &Tensor) -> candle_core::Result<()> {
        self.pred.extend(logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?);
        self.labels.extend(targets.to_dtype(DType::U32)?.to_vec1::<u32>()?);
        Ok(())
    }

    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("acc", hits(&self.pred, &self.labels) as f64 / self.labels.len().max(1) as f64)]
    }
}

/// The single value of a one-value metric (`acc` of [`Accuracy`]), or the named one.
fn value(metric: &dyn Metric, name: &str) -> f64 {
    metric.values().into_iter().find(|(n, _)| *n == name).map_or(f64::NAN, |(_, v)| v)
}

/// The Shapley contributions from the subsets' scores `v` (in the plan's order).
fn contributions(plan: &ShapleyPlan, v: &[f64], names: &[String]) -> Vec<Contribution> {
    let (phi, se) = plan.values(v);
    let total: f64 = phi.iter().map(|p| p.abs()).sum();
    phi.iter()
        .zip(&se)
        .zip(names)
        .map(|((&p, &e), name)| Contribution {
            modality: name.clone(),
            shapley: p,
            shapley_stderr: e,
            share: if total > 0.0 { p / total } else { f64::NAN },
        })
        .collect()
}

fn shapley_method(plan: &ShapleyPlan) -> String {
    if plan.sampled() {
        format!("sampled ({SHAPLEY_PERMUTATIONS} random orders)")
    } else {
        "exact".to_string()
    }
}

/// Trainable parameters per encoder (by modality), of the head, and in total.
fn parameter_counts(model: &dyn MultimodalModel) -> Vec<(String, usize)> {
    let count = |vs: Vec<dgl_core::NamedVar>| vs.iter().map(|v| v.var.elem_count()).sum::<usize>();
    let names = model.modality_names();
    let mut parameters: Vec<(String, usize)> =
        (0..model.num_modalities()).map(|i| (names[i].clone(), count(model.encoder_params(i)))).collect();
    parameters.push(("head".into(), count(model.head_params())));
    parameters.push(("total".into(), parameters.iter().map(|p| p.1).sum()));
    parameters
}

/// The Shapley plan of a run's model: its modalities when it fuses several, none otherwise.
fn plan_of(r: &Restored) -> ShapleyPlan {
    let m = r.setup.model.num_modalities();
    ShapleyPlan::new(if m >= 2 { m } else { 0 }, r.setup.cfg.seed ^ 0x05a4_b1e7)
}

fn classification_report(dir: &Path, r: Restored, opts: &EvalOptions) -> Result<EvalReport> {
    let classes = r.setup.data.test.num_classes();
    let names = r.setup.model.modality_names();
    let m = names.len();
    let plan = plan_of(&r);
    let corruptions = corruptions(opts);
    let pass = test_pass(&r, &plan, &corruptions, Predictions::default, Accuracy::default)?;
    let labels = pass.heads.first().map_or(&[][..], |(_, h)| &h.labels[..]);
    let scores: Vec<Scores> = pass.heads.iter().map(|(name, h)| scores(name, &h.pred, &h.labels, classes)).collect();
    let v = pass.subset_scores("acc");
    let fusion = m >= 2;
    let subsets = pass
        .reported_subsets(&plan, &names, &v)
        .map(|(modalities, accuracy)| Subset { modalities, accuracy })
        .collect();
    let robustness = pass
        .robustness_rows(&names, &corruptions, "acc")
        .map(|(modality, corruption, accuracy)| Robustness { modality, corruption, accuracy })
        .collect();
    let probes = if opts.probe { probes(&r.setup.model, &r.setup.data, &names)? } else { Vec::new() };
    Ok(EvalReport {
        run: dir.display().to_string(),
        method: r.setup.cfg.method.name().to_string(),
        dataset: r.setup.cfg.data.dataset.kind_name().to_string(),
        checkpoint: r.ckpt.meta.position(),
        test_samples: labels.len(),
        parameters: parameter_counts(&r.setup.model),
        scores,
        subsets,
        shapley_method: shapley_method(&plan),
        contributions: if fusion { contributions(&plan, &v, &names) } else { Vec::new() },
        robustness,
        probes,
    })
}

/// Feature rows (one `Vec<f64>` per sample).
type Rows = Vec<Vec<f64>>;

/// Frozen features of every modality for a whole split (eval mode), as host f64 rows.
fn features(model: &dyn MultimodalModel, data: &RunData, ds: &dyn Dataset) -> Result<(Vec<Rows>, Vec<u32>)> {
    let m = model.num_modalities();
    let mut feats: Vec<Rows> = vec![Vec::new(); m];
    let mut labels = Vec::new();
    for idx in epoch_batches(ds.len(), data.batch_size, None, false) {
        let (x, y) = data.batch(ds, &idx, Mode::Eval)?;
        for (i, f) in feats.iter_mut().enumerate() {
            let z = model.encode(i, &x[i], false)?.flatten_from(1)?.to_dtype(DType::F64)?;
            f.extend(z.to_vec2::<f64>()?);
        }
        labels.extend(y.to_dtype(DType::U32)?.to_vec1::<u32>()?);
    }
    Ok((feats, labels))
}

fn probes(model: &dyn MultimodalModel, data: &RunData, names: &[String]) -> Result<Vec<Probe>> {
    let classes = data.test.num_classes();
    let (train, y_train) = features(model, data, data.train.as_ref())?;
    let (test, y_test) = features(model, data, data.test.as_ref())?;
    let mut sets: Vec<(String, Rows, Rows)> = names
        .iter()
        .cloned()
        .zip(train.iter().cloned().zip(test.iter().cloned()))
        .map(|(n, (a, b))| (n, a, b))
        .collect();
    if names.len() >= 2 {
        let cat = |f: &[Rows]| -> Rows {
            (0..f[0].len()).map(|r| f.iter().flat_map(|m| m[r].iter().copied()).collect()).collect()
        };
        sets.push(("all".into(), cat(&train), cat(&test)));
    }
    sets.into_iter()
        .map(|(name, tr, te)| {
            let dim = tr.first().map_or(0, Vec::len);
            let probe = RidgeProbe::fit(&tr, &y_train, classes)
                .ok_or_else(|| CliError::Run(format!("linear probe on `{name}`: the normal equations are singular")))?;
            let acc = |x: &[Vec<f64>], y: &[u32]| {
                x.iter().zip(y).filter(|(r, &c)| probe.predict(r) == c).count() as f64 / y.len().max(1) as f64
            };
            Ok(Probe { features: name, dim, train_accuracy: acc(&tr, &y_train), test_accuracy: acc(&te, &y_test) })
        })
        .collect()
}

/// A least-squares linear classifier on standardised features (see the module doc).
pub struct RidgeProbe {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    /// (D + 1) × C, the last row the bias.
    w: Vec<Vec<f64>>,
}

impl RidgeProbe {
    /// Fits `argmax_c (x̃ W)_c` to `labels`; `None` if the system cannot be solved.
    pub fn fit(x: &[Vec<f64>], labels: &[u32], classes: usize) -> Option<Self> {
        let n = x.len();
        let d = x.first()?.len();
        let mean: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
        let inv_std: Vec<f64> = (0..d)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
                if v > 1e-12 {
                    1.0 / v.sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let row = |r: &[f64]| -> Vec<f64> {
            r.iter().zip(&mean).zip(&inv_std).map(|((v, m), s)| (v - m) * s).chain(std::iter::once(1.0)).collect()
        };
        let rows: Vec<Vec<f64>> = x.iter().map(|r| row(r)).collect();
        let p = d + 1;
        // A = X̃ᵀX̃ + λI (no penalty on the bias), B = X̃ᵀY.
        let mut a = vec![vec![0.0; p]; p];
        let mut b = vec![vec![0.0; classes]; p];
        for (r, &y) in rows.iter().zip(labels) {
            for i in 0..p {
                for j in 0..=i {
                    a[i][j] += r[i] * r[j];
                }
                b[i][y as usize] += r[i];
            }
        }
        let lambda = 1e-3 * (0..d).map(|i| a[i][i]).sum::<f64>() / d.max(1) as f64 + 1e-9;
        for (i, row) in a.iter_mut().enumerate().take(d) {
            row[i] += lambda;
        }
        let l = cholesky(&a)?;
        let w =
            (0..classes).map(|c| solve_cholesky(&l, &(0..p).map(|i| b[i][c]).collect::<Vec<_>>())).collect::<Vec<_>>();
        // w is C × P; store P × C.
        let w = (0..p).map(|i| (0..classes).map(|c| w[c][i]).collect()).collect();
        Some(Self { mean, inv_std, w })
    }

    /// The predicted class of one feature row.
    pub fn predict(&self, x: &[f64]) -> u32 {
        let classes = self.w[0].len();
        let mut best = (0usize, f64::NEG_INFINITY);
        for c in 0..classes {
            let mut s = self.w[x.len()][c];
            for (j, v) in x.iter().enumerate() {
                s += (v - self.mean[j]) * self.inv_std[j] * self.w[j][c];
            }
            if s > best.1 {
                best = (c, s);
            }
        }
        best.0 as u32
    }
}

/// Lower-triangular L with A = L·Lᵀ (A symmetric positive definite, lower half read).
fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let p = a.len();
    let mut l = vec![vec![0.0; p]; p];
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves L·Lᵀ·x = b.
fn solve_cholesky(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let p = l.len();
    let mut y = vec![0.0; p];
    for i in 0..p {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        x[i] = (y[i] - (i + 1..p).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

impl EvalReport {
    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let pct = |v: f64| format!("{:.2}", 100.0 * v);
        let mut s = format!(
            "# Evaluation of {}\n\nmethod `{}`, dataset `{}`, checkpoint {}, {} test samples.\n\n",
            self.run, self.method, self.dataset, self.checkpoint, self.test_samples
        );
        let params: Vec<String> = self.parameters.iter().map(|(n, c)| format!("{n} {c}")).collect();
        s += &format!("Trainable parameters: {}.\n\n", params.join(", "));
        s += "| head | accuracy % | macro-F1 % |\n|---|---:|---:|\n";
        for sc in &self.scores {
            s += &format!("| {} | {} | {} |\n", sc.name, pct(sc.accuracy), pct(sc.macro_f1));
        }
        if !self.contributions.is_empty() {
            s += "\nModality contributions through the fusion head (absent modalities' features zeroed):\n\n";
            s += "| modalities present | accuracy % |\n|---|---:|\n";
            for sub in &self.subsets {
                let label = if sub.modalities.is_empty() { "none".to_string() } else { sub.modalities.join(" + ") };
                s += &format!("| {label} | {} |\n", pct(sub.accuracy));
            }
            if self.shapley_method == "exact" {
                s += "\n| modality | Shapley value (accuracy points) | share % |\n|---|---:|---:|\n";
                for c in &self.contributions {
                    s += &format!("| {} | {:.2} | {} |\n", c.modality, 100.0 * c.shapley, pct(c.share));
                }
            } else {
                s += &format!(
                    "\nShapley values {}: within ±8.6 points of the exact values with probability ≥ 95 % \
                     (Hoeffding), standard errors beside them.\n",
                    self.shapley_method
                );
                s += "\n| modality | Shapley value (accuracy points) | standard error | share % |\n|---|---:|---:|---:|\n";
                for c in &self.contributions {
                    s += &format!(
                        "| {} | {:.2} | {:.2} | {} |\n",
                        c.modality,
                        100.0 * c.shapley,
                        100.0 * c.shapley_stderr,
                        pct(c.share)
                    );
                }
            }
        }
        if !self.robustness.is_empty() {
            s += "\nRobustness: multimodal accuracy with one modality's input corrupted:\n\n";
            s += "| modality | corruption | accuracy % |\n|---|---|---:|\n";
            for r in &self.robustness {
                s += &format!("| {} | {} | {} |\n", r.modality, r.corruption, pct(r.accuracy));
            }
        }
        if !self.probes.is_empty() {
            s += "\nLinear probes on the frozen encoders (ridge least squares, standardised features):\n\n";
            s += "| features | dim | train accuracy % | test accuracy % |\n|---|---:|---:|---:|\n";
            for p in &self.probes {
                s +=
                    &format!("| {} | {} | {} | {} |\n", p.features, p.dim, pct(p.train_accuracy), pct(p.test_accuracy));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_matches_scikit_learn() {
        // sklearn.metrics.f1_score([0,0,1,1,2,2], [0,1,1,1,2,0], average="macro") = 0.6555555…
        // (per class: 0.5, 0.8, 0.6667).
        let s = scores("x", &[0, 1, 1, 1, 2, 0], &[0, 0, 1, 1, 2, 2], 4);
        assert!((s.macro_f1 - (0.5 + 0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12, "{s:?}");
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // A prediction on a logit beyond the dataset's classes (a dead logit) counts as a class of
        // its own, as in scikit-learn: f1_score([0,1], [0,3], average="macro") = (1 + 0 + 0)/3.
        let s = scores("x", &[0, 3], &[0, 1], 2);
        assert!((s.macro_f1 - 1.0 / 3.0).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn shapley_values_are_efficient_and_symmetric() {
        // Two modalities: v(∅) = 0.1, v(a) = 0.6, v(b) = 0.3, v(ab) = 0.8.
        let phi = shapley(&[0.1, 0.6, 0.3, 0.8], 2);
        assert!((phi[0] - 0.5 * ((0.6 - 0.1) + (0.8 - 0.3))).abs() < 1e-12);
        assert!((phi[1] - 0.5 * ((0.3 - 0.1) + (0.8 - 0.6))).abs() < 1e-12);
        // Three modalities, additive game: each value is its own marginal.
        let w = [0.2, 0.3, 0.1];
        let v: Vec<f64> = (0..8).map(|s: usize| (0..3).filter(|i| s & (1 << i) != 0).map(|i| w[i]).sum()).collect();
        let phi = shapley(&v, 3);
        for i in 0..3 {
            assert!((phi[i] - w[i]).abs() < 1e-12, "{phi:?}");
        }
        // A game with interaction: values still sum to v(all) − v(∅).
        let v = [0.0, 0.1, 0.2, 0.5, 0.05, 0.3, 0.4, 0.9];
        let phi = shapley(&v, 3);
        assert!((phi.iter().sum::<f64>() - 0.9).abs() < 1e-12);
    }

    /// A game with interactions between modalities: v(S) = (Σ_{i∈S} w_i)² / (Σ w)², so v(all) = 1.
    fn quadratic_game(present: &[bool]) -> f64 {
        let w = |i: usize| 1.0 + (i % 4) as f64;
        let total: f64 = (0..present.len()).map(w).sum();
        let s: f64 = (0..present.len()).filter(|&i| present[i]).map(w).sum();
        (s / total).powi(2)
    }

    #[test]
    fn shapley_plan_is_exact_up_to_its_limit_and_sampled_within_its_stated_error_beyond() {
        // Exact: the plan's values are the enumeration's.
        let plan = ShapleyPlan::new(3, 1);
        assert!(!plan.sampled());
        assert_eq!(plan.len(), 8);
        let v: Vec<f64> = (0..plan.len()).map(|j| quadratic_game(&plan.subset(j))).collect();
        assert_eq!(plan.values(&v).0, shapley(&v, 3));
        assert_eq!(ShapleyPlan::new(SHAPLEY_EXACT_MAX, 1).subsets.len(), 1 << SHAPLEY_EXACT_MAX);

        // Sampled, 12 modalities: within the stated 95 % bound (and a few standard errors) of the
        // exact values computed from all 4096 subsets; efficient exactly.
        let m = SHAPLEY_EXACT_MAX + 2;
        let plan = ShapleyPlan::new(m, 7);
        assert!(plan.sampled());
        assert!(plan.len() <= SHAPLEY_PERMUTATIONS * (m - 1) + 2);
        let v: Vec<f64> = (0..plan.len()).map(|j| quadratic_game(&plan.subset(j))).collect();
        let (phi, se) = plan.values(&v);
        let all: Vec<f64> = (0..1usize << m)
            .map(|mask| quadratic_game(&(0..m).map(|i| mask & (1 << i) != 0).collect::<Vec<_>>()))
            .collect();
        let exact = shapley(&all, m);
        for i in 0..m {
            let err = (phi[i] - exact[i]).abs();
            assert!(
                err <= 0.086 && err <= 4.0 * se[i] + 1e-12,
                "modality {i}: {} vs {} (se {})",
                phi[i],
                exact[i],
                se[i]
            );
        }
        assert!((phi.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // The reported subsets are ∅, each single modality and all of them.
        let reported: Vec<usize> = plan.reported().map(|j| plan.subset(j).iter().filter(|&&b| b).count()).collect();
        assert_eq!(reported.len(), m + 2);
        assert_eq!((reported[0], reported[1], reported[m + 1]), (0, 1, m));

        // An additive game is recovered exactly from any order; the work stays linear in M.
        let m = 100;
        let plan = ShapleyPlan::new(m, 3);
        assert!(plan.len() <= SHAPLEY_PERMUTATIONS * (m - 1) + 2);
        let v: Vec<f64> =
            (0..plan.len()).map(|j| (0..m).filter(|&i| plan.present(j, i)).map(|i| i as f64 * 1e-3).sum()).collect();
        let (phi, se) = plan.values(&v);
        for i in 0..m {
            assert!((phi[i] - i as f64 * 1e-3).abs() < 1e-12 && se[i] < 1e-9, "{i}: {}", phi[i]);
        }
    }

    #[test]
    fn ridge_probe_separates_linearly_separable_classes_and_solves_exactly() {
        let mut rng = Rng::new(3);
        let centers = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]];
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..300 {
            let c = i % 3;
            x.push((0..3).map(|j| centers[c][j] + 0.3 * rng.normal()).collect::<Vec<f64>>());
            y.push(c as u32);
        }
        let p = RidgeProbe::fit(&x, &y, 3).unwrap();
        let acc = x.iter().zip(&y).filter(|(r, &c)| p.predict(r) == c).count();
        assert_eq!(acc, 300);
        // Cholesky solve against a known system.
        let a = vec![vec![4.0, 0.0, 0.0], vec![2.0, 5.0, 0.0], vec![0.4, 1.0, 3.0]];
        let full = |i: usize, j: usize| if j <= i { a[i][j] } else { a[j][i] };
        let x_true = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3).map(|i| (0..3).map(|j| full(i, j) * x_true[j]).sum()).collect();
        let x = solve_cholesky(&cholesky(&a).unwrap(), &b);
        for i in 0..3 {
            assert!((x[i] - x_true[i]).abs() < 1e-12, "{x:?}");
        }
    }
}

//! D&R, Diagnosing and Re-learning (Wei et al., ECCV 2024),
//! `Diagnosing_Relearning_ECCV2024/code/ours.py`.
//!
//! * Training: the plain multimodal loss CE(h(z)) only (the official unimodal heads are unused).
//! * θ_init: every encoder parameter right after construction (`init_para.pkl`, line 345): taken
//!   before the first training step (`on_epoch_start` of epoch 0).
//! * Re-learning (415-427), after 0-based epoch e with e % `every` == 0 and e > 0, at most
//!   `max_times` times (official 20 and 3: epochs 20, 40, 60): evaluation-mode representations of
//!   the training and validation splits; per modality and split, per-dimension MinMax scaling to
//!   [−1, 1], k-means with k = K, purity (63-95, 99-135); w_m = tanh(λ·|purity_train − purity_val|);
//!   θ_m ← w_m·θ_init + (1 − w_m)·θ_m for every trainable parameter of encoder m (139-169; BatchNorm
//!   running statistics and optimizer momentum untouched).
//! * When: once epoch e has been evaluated ([`Method::after_evaluation`]), as the official loop
//!   (378-427: train, valid on the test set, keep the best model, then reinit): the metrics of epoch
//!   e describe the model before re-initialisation, and the end-of-epoch checkpoint the model after.

use candle_core::Tensor;
use dgl_core::method::snapshot;
use dgl_core::model::detach_all;
use dgl_core::rng::Rng;
use dgl_core::{
    BatchSource, Error, Method, MultimodalModel, Prediction, Result, RoutedMethod, Routing, Split, StepContext,
    StepReport,
};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
use crate::kmeans::{kmeans, minmax_scale, purity};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, TaskKind};
use crate::util::{check_hp, check_non_negative, f64_tensor, flatten_rows, host_targets, state_f64};

/// D&R's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnrConfig {
    /// λ of the re-learning strength w = tanh(λ·gap) (official `move_lambda` = 3).
    pub lambda: f64,
    /// Re-learn after every `every`-th epoch (official 20; BalanceBenchmark 15).
    pub every: usize,
    /// At most this many times (official 3; BalanceBenchmark 2).
    pub max_times: usize,
    /// Lloyd iterations at most (scikit-learn default 300).
    pub kmeans_max_iter: usize,
    /// Relative centre-shift tolerance (scikit-learn default 1e-4).
    pub kmeans_tol: f64,
}

impl Default for DnrConfig {
    fn default() -> Self {
        Self { lambda: 3.0, every: 20, max_times: 3, kmeans_max_iter: 300, kmeans_tol: 1e-4 }
    }
}

impl MethodSpec for DnrConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "dnr",
        label: "D&R",
        summary: "diagnosing (k-means purity gap) and partial re-initialisation of the encoders",
        modalities: ModalityCount::AtLeast(1),
        heads: HeadSupport::Any,
        tasks: &[TaskKind::Classification],
        needs_validation: true,
    };

    fn validate(&self) -> Result<()> {
        check_non_negative("lambda", self.lambda)?;
        check_hp(self.every > 0, "every", self.every, "must be > 0")?;
        check_hp(self.kmeans_max_iter > 0, "kmeans_max_iter", self.kmeans_max_iter, "must be > 0")?;
        check_non_negative("kmeans_tol", self.kmeans_tol)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(Dnr::new(self.clone(), ctx.num_classes, ctx.seed)))
    }

    fn official_settings(_bench: Option<Benchmark>) -> Vec<Setting> {
        vec![
            Setting::new("method.lambda", 3.0, "D&R `ours.py` (`move_lambda` = 3, every dataset)"),
            Setting::new("method.every / max_times", "20 / 3", "D&R `ours.py` (re-learning after epochs 20, 40, 60)"),
        ]
    }

    fn schedule(bench: Option<Benchmark>) -> Schedule {
        if bench == Some(Benchmark::KineticsSounds) {
            Schedule::new(1e-3, &[], "D&R author, GeWu-Lab/Diagnosing_Relearning_ECCV2024#3 (KS lr 1e-3), no scheduler")
        } else {
            Schedule::new(2e-3, &[], "D&R `ours.py` (lr 2e-3, no scheduler: constant)")
        }
    }
}

/// The diagnosis of one modality.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    pub purity_train: f64,
    pub purity_val: f64,
    /// w_m = tanh(λ·|purity_train − purity_val|).
    pub weight: f64,
}

/// w = tanh(λ·|p_train − p_val|).
pub fn relearn_weight(purity_train: f64, purity_val: f64, lambda: f64) -> f64 {
    (lambda * (purity_train - purity_val).abs()).tanh()
}

/// Evaluation-mode representations `[N, d_m]` of every modality over a split, with the labels.
pub fn features(
    model: &dyn MultimodalModel,
    data: &dyn BatchSource,
    split: Split,
) -> Result<(Vec<Tensor>, Vec<usize>)> {
    let mm = model.num_modalities();
    let mut parts: Vec<Vec<Tensor>> = vec![Vec::new(); mm];
    let mut labels = Vec::new();
    data.for_each_batch(split, None, &mut |x, y| {
        let z = detach_all(&model.encode_all(x, false)?);
        for (m, zm) in z.iter().enumerate() {
            parts[m].push(flatten_rows(zm)?);
        }
        labels.extend(host_targets(y)?);
        Ok(())
    })?;
    if labels.is_empty() {
        return Err(Error::InvalidInput(format!("D&R needs a non-empty {split:?} split")));
    }
    let feats = parts.iter().map(|p| Tensor::cat(p, 0)).collect::<candle_core::Result<Vec<_>>>()?;
    Ok((feats, labels))
}

/// Purity of k-means (k = `k`) on MinMax-scaled features.
pub fn feature_purity(x: &Tensor, labels: &[usize], k: usize, cfg: &DnrConfig, rng: &mut Rng) -> Result<f64> {
    let clusters = kmeans(
        &minmax_scale(&x.to_dtype(candle_core::DType::F32)?)?,
        k.min(labels.len()),
        cfg.kmeans_max_iter,
        cfg.kmeans_tol,
        rng,
    )?;
    Ok(purity(&clusters, labels))
}

/// θ ← w·θ_init + (1 − w)·θ for the parameters of `init` (matched by name).
pub fn interpolate(params: &[dgl_core::NamedVar], init: &[(String, Tensor)], w: f64) -> Result<()> {
    for p in params {
        let (_, t0) = init
            .iter()
            .find(|(n, _)| *n == p.name)
            .ok_or_else(|| Error::InvalidInput(format!("D&R: no initial value for `{}`", p.name)))?;
        let cur = p.var.as_tensor();
        let t0 = t0.to_device(cur.device())?.to_dtype(cur.dtype())?;
        let new = ((t0 * w)? + (cur.detach() * (1.0 - w))?)?;
        p.var.set(&new)?;
    }
    Ok(())
}

/// D&R.
#[derive(Debug)]
pub struct Dnr {
    pub cfg: DnrConfig,
    pub num_classes: usize,
    seed: u64,
    inner: RoutedMethod,
    /// θ_init of every encoder parameter.
    init: Option<Vec<(String, Tensor)>>,
    times: usize,
    last: Vec<Diagnosis>,
    pending_report: bool,
}

impl Dnr {
    pub fn new(cfg: DnrConfig, num_classes: usize, seed: u64) -> Self {
        Self {
            cfg,
            num_classes,
            seed,
            inner: RoutedMethod::new(DnrConfig::DESCRIPTOR.name, Routing::plain()),
            init: None,
            times: 0,
            last: Vec::new(),
            pending_report: false,
        }
    }

    /// The last diagnosis, per modality.
    pub fn last_diagnosis(&self) -> &[Diagnosis] {
        &self.last
    }

    /// How many re-learning rounds have run.
    pub fn times(&self) -> usize {
        self.times
    }

    /// Takes θ_init from the model's current encoder parameters.
    pub fn capture_init(&mut self, model: &dyn MultimodalModel) -> Result<()> {
        let params: Vec<_> = (0..model.num_modalities()).flat_map(|m| model.encoder_params(m)).collect();
        self.init = Some(snapshot(&params)?);
        Ok(())
    }

    /// Diagnoses every modality and re-initialises the encoders partially.
    pub fn relearn(&mut self, model: &dyn MultimodalModel, data: &dyn BatchSource) -> Result<()> {
        let init = self.init.as_ref().ok_or_else(|| Error::InvalidInput("D&R: θ_init was never captured".into()))?;
        let (ftr, ytr) = features(model, data, Split::Train)?;
        let (fva, yva) = features(model, data, Split::Validation)?;
        let mut rng = Rng::derive(self.seed, 0xD0_0D + self.times as u64);
        let mut diag = Vec::new();
        for m in 0..model.num_modalities() {
            let pt = feature_purity(&ftr[m], &ytr, self.num_classes, &self.cfg, &mut rng)?;
            let pv = feature_purity(&fva[m], &yva, self.num_classes, &self.cfg, &mut rng)?;
            let w = relearn_weight(pt, pv, self.cfg.lambda);
            interpolate(&model.encoder_params(m), init, w)?;
            diag.push(Diagnosis { purity_train: pt, purity_val: pv, weight: w });
        }
        self.last = diag;
        self.times += 1;
        self.pending_report = true;
        Ok(())
    }
}

impl Method for Dnr {
    fn name(&self) -> String {
        DnrConfig::DESCRIPTOR.name.into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        DnrConfig::DESCRIPTOR.check_modalities(model.num_modalities())
    }

    fn needs_validation(&self) -> bool {
        DnrConfig::DESCRIPTOR.needs_validation
    }

    fn on_epoch_start(&mut self, model: &dyn MultimodalModel, epoch: usize, _data: &dyn BatchSource) -> Result<()> {
        if self.init.is_none() {
            if epoch == 0 {
                self.capture_init(model)?;
            } else {
                return Err(Error::InvalidInput(format!(
                    "D&R resumed at epoch {epoch} without θ_init: load the method state saved with the checkpoint"
                )));
            }
        }
        Ok(())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        let mut rep = self.inner.train_step(ctx, inputs, targets)?;
        if self.pending_report {
            let names = ctx.model.modality_names();
            for (n, d) in names.iter().zip(&self.last) {
                rep.scalars.push((format!("dnr_purity_train_{n}"), d.purity_train));
                rep.scalars.push((format!("dnr_purity_val_{n}"), d.purity_val));
                rep.scalars.push((format!("dnr_weight_{n}"), d.weight));
            }
            self.pending_report = false;
        }
        Ok(rep)
    }

    /// Re-learning after the epoch's evaluation, as `ours.py:378-427` (valid → keep the best →
    /// reinit): the metrics of a re-learning epoch describe the model before re-initialisation.
    fn after_evaluation(&mut self, ctx: &mut StepContext<'_>, data: &dyn BatchSource) -> Result<()> {
        let e = ctx.epoch;
        if e > 0 && e % self.cfg.every == 0 && self.times < self.cfg.max_times {
            self.relearn(ctx.model, data)?;
        }
        Ok(())
    }

    fn predict(&self, model: &dyn MultimodalModel, inputs: &[Tensor]) -> Result<Prediction> {
        self.inner.predict(model, inputs)
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut v = vec![("dnr.times".to_string(), f64_tensor(&[self.times as f64])?)];
        // The last diagnosis and whether it is still to be reported (by the next step), so a run
        // resumed right after a re-learning round logs it as an uninterrupted one does.
        v.push(("dnr.pending_report".to_string(), f64_tensor(&[if self.pending_report { 1.0 } else { 0.0 }])?));
        if !self.last.is_empty() {
            let d: Vec<f64> = self.last.iter().flat_map(|d| [d.purity_train, d.purity_val, d.weight]).collect();
            v.push(("dnr.last_diagnosis".to_string(), f64_tensor(&d)?.reshape((self.last.len(), 3))?));
        }
        if let Some(init) = &self.init {
            for (n, t) in init {
                v.push((format!("dnr.init.{n}"), t.clone()));
            }
        }
        Ok(v)
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some(v) = state_f64(state, "dnr.times", 1)? {
            self.times = v[0] as usize;
        }
        if let Some(v) = state_f64(state, "dnr.pending_report", 1)? {
            self.pending_report = v[0] != 0.0;
        }
        if let Some(t) = crate::util::find_state(state, "dnr.last_diagnosis") {
            let v = crate::util::host_f64(t)?;
            if v.len() % 3 != 0 {
                return Err(Error::InvalidInput(format!(
                    "method state `dnr.last_diagnosis` has {} values, not a multiple of 3",
                    v.len()
                )));
            }
            self.last = v.chunks(3).map(|c| Diagnosis { purity_train: c[0], purity_val: c[1], weight: c[2] }).collect();
        }
        let init: Vec<(String, Tensor)> =
            state.iter().filter_map(|(n, t)| n.strip_prefix("dnr.init.").map(|s| (s.to_string(), t.clone()))).collect();
        if !init.is_empty() {
            self.init = Some(init);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use candle_core::Device;

    #[test]
    fn weights_and_interpolation() {
        assert!((relearn_weight(0.9, 0.6, 3.0) - 0.9f64.tanh()).abs() < 1e-12);
        assert_eq!(relearn_weight(0.5, 0.5, 3.0), 0.0);
        let model = Toy::new(&[3, 2], 4, 3, 1);
        let mut dnr = Dnr::new(DnrConfig::default(), 3, 0);
        dnr.capture_init(&model).unwrap();
        let init0 = vec(model.enc[0].0.as_tensor());
        let moved: Vec<f64> = init0.iter().map(|v| v + 1.0).collect();
        model.enc[0].0.set(&Tensor::from_vec(moved.clone(), (4, 3), &Device::Cpu).unwrap()).unwrap();
        interpolate(&model.encoder_params(0), dnr.init.as_ref().unwrap(), 0.25).unwrap();
        let want: Vec<f64> = init0.iter().zip(&moved).map(|(a, b)| 0.25 * a + 0.75 * b).collect();
        assert_close(&vec(model.enc[0].0.as_tensor()), &want, 1e-12, "lerp");
    }

    /// Purity on features that cluster perfectly by class on the training split and not at all
    /// on the validation split; the re-learning weight and interpolation follow.
    #[test]
    fn diagnosis_end_to_end() {
        // Identity-like encoders: input one-hot-ish by class (train), random (val).
        let model = Toy::new(&[3, 3], 3, 3, 2);
        let dev = Device::Cpu;
        for (w, b) in &model.enc {
            let eye = Tensor::eye(3, candle_core::DType::F64, &dev).unwrap();
            w.set(&eye).unwrap();
            b.set(&Tensor::zeros(3, candle_core::DType::F64, &dev).unwrap()).unwrap();
        }
        let mut rng = Rng::new(4);
        let mut batch = |clean: bool| {
            let y: Vec<u32> = (0..12).map(|i| (i % 3) as u32).collect();
            let x: Vec<f64> = y
                .iter()
                .flat_map(|&c| {
                    (0..3)
                        .map(|j| {
                            if clean {
                                let base = if j == c as usize { 2.0 } else { 0.0 };
                                base + 0.01 * rng.normal()
                            } else {
                                rng.normal()
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let xt = Tensor::from_vec(x, (12, 3), &dev).unwrap();
            (vec![xt.clone(), xt], Tensor::from_vec(y, 12, &dev).unwrap())
        };
        let data = Data { train: vec![batch(true), batch(true)], val: vec![batch(false)] };
        let mut dnr = Dnr::new(DnrConfig::default(), 3, 0);
        // θ_init: the current values minus 1.
        dnr.on_epoch_start(&model, 0, &data).unwrap();
        let init = vec(model.enc[1].0.as_tensor());
        for (w, _) in &model.enc {
            w.set(&(w.as_tensor() + 1.0).unwrap()).unwrap();
        }
        // Features are computed with the moved weights (eye + 1): still separable on train.
        let (ftr, ytr) = features(&model, &data, Split::Train).unwrap();
        let (fva, yva) = features(&model, &data, Split::Validation).unwrap();
        let pt = feature_purity(&ftr[1], &ytr, 3, &dnr.cfg, &mut Rng::new(0)).unwrap();
        let pv = feature_purity(&fva[1], &yva, 3, &dnr.cfg, &mut Rng::new(0)).unwrap();
        assert_eq!(pt, 1.0);
        assert!(pv < 1.0);

        let mut sgd = plain_sgd(0.1);
        let mut ctx = context(&model, &mut sgd, 19);
        let before = vec(model.enc[1].0.as_tensor());
        dnr.after_evaluation(&mut ctx, &data).unwrap(); // epoch 19: nothing
        assert_eq!(dnr.times(), 0);
        ctx.epoch = 20;
        dnr.after_evaluation(&mut ctx, &data).unwrap();
        assert_eq!(dnr.times(), 1);
        let d = &dnr.last_diagnosis()[1];
        assert_eq!(d.purity_train, 1.0);
        assert!((d.weight - relearn_weight(d.purity_train, d.purity_val, 3.0)).abs() < 1e-15);
        assert!(d.weight > 0.0);
        let want: Vec<f64> = init.iter().zip(&before).map(|(a, b)| d.weight * a + (1.0 - d.weight) * b).collect();
        assert_close(&vec(model.enc[1].0.as_tensor()), &want, 1e-12, "relearned");
        // At most max_times.
        for e in [40, 60, 80, 100] {
            ctx.epoch = e;
            dnr.after_evaluation(&mut ctx, &data).unwrap();
        }
        assert_eq!(dnr.times(), 3);
        // State round trip; resuming without it is refused.
        let mut other = Dnr::new(DnrConfig::default(), 3, 0);
        assert!(other.on_epoch_start(&model, 5, &data).is_err());
        other.load_state(&dnr.state().unwrap()).unwrap();
        assert_eq!(other.times(), 3);
        other.on_epoch_start(&model, 5, &data).unwrap();
        assert!(dnr.needs_validation());
    }
}

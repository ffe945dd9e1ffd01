//! BatchNorm running statistics are updated exactly once per training step by every method, as in
//! the official code (PyTorch updates them on every training-mode forward, and each official method
//! runs exactly one per step: its extra forwards — AGM's zeroed-input responses, PMR's prototypes,
//! D&R's features — run in evaluation mode), and never by the epoch hooks (PMR prototypes, D&R
//! diagnosis and re-learning, G-Blending OGR copy training, which restores the model).
//!
//! Reference: a twin model with the same state runs one training-mode forward of the same batch;
//! the method's model must then hold the twin's statistics (two updates would give
//! (1 − m)²·r + …, measurably different: checked).

use candle_core::{DType, Device, Tensor};
use dgl_baselines::{BuildContext, MethodConfig, MethodKind};
use dgl_core::method::{restore, snapshot};
use dgl_core::rng::Rng;
use dgl_core::{BatchSource, MultimodalModel, Optimizer, Sgd, SgdConfig, Split, StepContext};
use dgl_models::{build_model_dtype, Model, ModelConfig, ModelState};

const K: usize = 3;
const B: usize = 4;

struct Batches {
    train: Vec<(Vec<Tensor>, Tensor)>,
    val: Vec<(Vec<Tensor>, Tensor)>,
}

impl BatchSource for Batches {
    fn num_batches(&self, split: Split) -> usize {
        self.split(split).len()
    }
    fn for_each_batch(
        &self,
        split: Split,
        limit: Option<usize>,
        f: &mut dyn FnMut(&[Tensor], &Tensor) -> dgl_core::Result<()>,
    ) -> dgl_core::Result<()> {
        for (x, y) in self.split(split).iter().take(limit.unwrap_or(usize::MAX)) {
            f(x, y)?;
        }
        Ok(())
    }
}

impl Batches {
    fn split(&self, s: Split) -> &[(Vec<Tensor>, Tensor)] {
        match s {
            Split::Train => &self.train,
            Split::Validation => &self.val,
        }
    }
}

/// The two-ResNet model (or, for the unimodal rows, the 1-modality model of the modality kept).
fn build(only: Option<usize>) -> Model {
    let cfg = ModelConfig { base_width: 2, num_classes: K, ..ModelConfig::default() };
    let shapes = [vec![1, 32, 32], vec![3, 1, 32, 32]];
    let (cfg, shapes) = match only {
        Some(m) => (cfg.unimodal(["audio", "visual"][m]).unwrap(), vec![shapes[m].clone()]),
        None => (cfg, shapes.to_vec()),
    };
    build_model_dtype(&cfg, &shapes, &Device::Cpu, DType::F64, 3).unwrap()
}

fn batches(only: Option<usize>, n: usize, seed: u64) -> Vec<(Vec<Tensor>, Tensor)> {
    let mut rng = Rng::new(seed);
    let shapes = [vec![B, 1, 32, 32], vec![B, 3, 1, 32, 32]];
    (0..n)
        .map(|_| {
            let x: Vec<Tensor> = shapes
                .iter()
                .enumerate()
                .filter(|(m, _)| only.is_none_or(|u| u == *m))
                .map(|(_, s)| {
                    let v: Vec<f64> = (0..s.iter().product()).map(|_| rng.normal()).collect();
                    Tensor::from_vec(v, s.as_slice(), &Device::Cpu).unwrap()
                })
                .collect();
            let y: Vec<u32> = (0..B).map(|_| (rng.next_u64() % K as u64) as u32).collect();
            (x, Tensor::from_vec(y, B, &Device::Cpu).unwrap())
        })
        .collect()
}

/// Every running mean and variance, in order.
fn stats(model: &Model) -> Vec<f64> {
    model
        .named_buffers()
        .iter()
        .flat_map(|b| b.var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap())
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn context<'a>(model: &'a Model, opt: &'a mut Optimizer, epoch: usize, step: usize, steps: usize) -> StepContext<'a> {
    StepContext {
        model,
        optimizer: opt,
        clip_norm: Some(40.0),
        loss: &dgl_core::loss::CrossEntropy,
        epoch,
        step_in_epoch: step,
        steps_per_epoch: steps,
        global_step: (epoch * steps + step) as u64,
    }
}

#[test]
fn every_method_updates_batchnorm_statistics_exactly_once_per_step() {
    // Every method on the pair, and plain training of each one-modality model (the unimodal rows).
    let cases = MethodKind::ALL
        .iter()
        .map(|&k| (k, None))
        .chain([(MethodKind::Vanilla, Some(0)), (MethodKind::Vanilla, Some(1))]);
    for (kind, only) in cases {
        let model = build(only);
        let twin = build(only);
        let data = Batches { train: batches(only, 2, 1), val: batches(only, 1, 2) };
        let mut cfg = MethodConfig::new(kind);
        match &mut cfg {
            MethodConfig::GBlendingOgr(c) => c.ogr_every = 1, // OGR copy training before every epoch
            MethodConfig::Dnr(c) => c.every = 1,              // D&R re-learns after epoch 1
            _ => {}
        }
        let mut method = cfg.build(&BuildContext { num_classes: K, seed: 0 }).unwrap();
        method.check(&model).unwrap();
        let mut opt: Optimizer = Sgd::new(SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() }).unwrap().into();
        let steps = data.train.len();
        let mut separated = false;
        for epoch in 0..2 {
            let before = stats(&model);
            method.on_epoch_start(&model, epoch, &data).unwrap();
            assert_eq!(stats(&model), before, "{kind}: on_epoch_start {epoch} changed the statistics");
            for (i, (x, y)) in data.train.iter().enumerate() {
                // The twin takes the model's state and runs one training-mode forward.
                restore(&twin.state_vars(), &snapshot(&model.state_vars()).unwrap()).unwrap();
                let r0 = stats(&twin);
                twin.encode_all(x, true).unwrap();
                let once = stats(&twin);
                twin.encode_all(x, true).unwrap();
                let twice = stats(&twin);
                let mut ctx = context(&model, &mut opt, epoch, i, steps);
                method.train_step(&mut ctx, x, y).unwrap();
                let got = stats(&model);
                let err = max_diff(&got, &once);
                assert!(err < 1e-12, "{kind}: epoch {epoch} step {i}: not one update (max diff {err})");
                // The check can tell one update from none and from two.
                separated |= max_diff(&once, &r0) > 1e-3 && max_diff(&twice, &once) > 1e-4;
            }
            let before = stats(&model);
            let mut ctx = context(&model, &mut opt, epoch, steps, steps);
            method.on_epoch_end(&mut ctx, &data).unwrap();
            method.after_evaluation(&mut ctx, &data).unwrap();
            assert_eq!(stats(&model), before, "{kind}: the end of epoch {epoch} changed the statistics");
        }
        assert!(separated, "{kind}: the reference does not separate one update from two");
    }
}

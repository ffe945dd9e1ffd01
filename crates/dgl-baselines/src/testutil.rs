//! Tiny toy models and data for the unit tests: encoder m = tanh(x W_mᵀ + b_m), concat head.
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};
use dgl_core::loss::CrossEntropy;
use dgl_core::rng::Rng;
use dgl_core::{
    BatchSource, Method, MultimodalModel, NamedVar, Optimizer, Sgd, SgdConfig, Split, StepContext, StepReport,
};

/// Toy model: tanh-linear encoders, concat linear head.
pub struct Toy {
    /// Encoder weights `[d, i]` (or `[d, i, 1, 1]` with `conv`) and biases `[d]`.
    pub enc: Vec<(Var, Var)>,
    pub conv: bool,
    /// Head weight: `[K, D]` (PyTorch layout) or `[D, K]` with `transposed`.
    pub head_w: Var,
    pub head_b: Var,
    pub transposed: bool,
    pub d: usize,
    pub k: usize,
    pub input_dims: Vec<usize>,
}

fn randn(rng: &mut Rng, shape: &[usize], scale: f64) -> Result<Var> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal() * scale).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu)?)
}

impl Toy {
    /// f64 toy with `input_dims[m]` inputs per modality, representation size `d`, `k` classes.
    pub fn new(input_dims: &[usize], d: usize, k: usize, seed: u64) -> Self {
        Self::build(input_dims, d, k, seed, false, false)
    }

    pub fn build(input_dims: &[usize], d: usize, k: usize, seed: u64, conv: bool, transposed: bool) -> Self {
        let mut rng = Rng::new(seed);
        let enc = input_dims
            .iter()
            .map(|&i| {
                let shape: Vec<usize> = if conv { vec![d, i, 1, 1] } else { vec![d, i] };
                (randn(&mut rng, &shape, 0.7).unwrap(), randn(&mut rng, &[d], 0.3).unwrap())
            })
            .collect();
        let m = input_dims.len();
        let wshape = if transposed { vec![d * m, k] } else { vec![k, d * m] };
        Self {
            enc,
            conv,
            head_w: randn(&mut rng, &wshape, 0.7).unwrap(),
            head_b: randn(&mut rng, &[k], 0.3).unwrap(),
            transposed,
            d,
            k,
            input_dims: input_dims.to_vec(),
        }
    }

    /// Random inputs for a batch.
    pub fn inputs(&self, batch: usize, seed: u64) -> Vec<Tensor> {
        let mut rng = Rng::new(seed);
        self.input_dims.iter().map(|&i| randn(&mut rng, &[batch, i], 1.0).unwrap().as_tensor().clone()).collect()
    }

    fn weight(&self, m: usize) -> Result<Tensor> {
        let w = self.enc[m].0.as_tensor();
        if self.conv {
            w.reshape((self.d, self.input_dims[m]))
        } else {
            Ok(w.clone())
        }
    }
}

/// Targets `(i·7 + 1) mod K`.
pub fn targets(b: usize, k: usize) -> Tensor {
    Tensor::from_vec((0..b as u32).map(|i| (i * 7 + 1) % k as u32).collect::<Vec<_>>(), b, &Device::Cpu).unwrap()
}

impl MultimodalModel for Toy {
    fn num_modalities(&self) -> usize {
        self.enc.len()
    }
    fn modality_names(&self) -> Vec<String> {
        let all = ["audio", "visual", "text"];
        (0..self.enc.len()).map(|m| all[m].to_string()).collect()
    }
    fn encode(&self, m: usize, x: &Tensor, _train: bool) -> Result<Tensor> {
        x.matmul(&self.weight(m)?.t()?)?.broadcast_add(self.enc[m].1.as_tensor())?.tanh()
    }
    fn fuse(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        let x = Tensor::cat(z, 1)?;
        let w = self.head_w.as_tensor();
        let o = if self.transposed { x.matmul(w)? } else { x.matmul(&w.t()?)? };
        o.broadcast_add(self.head_b.as_tensor())
    }
    fn encoder_params(&self, m: usize) -> Vec<NamedVar> {
        let (w, b) = &self.enc[m];
        vec![NamedVar::new(format!("enc{m}.weight"), w.clone()), NamedVar::new(format!("enc{m}.bias"), b.clone())]
    }
    fn head_params(&self) -> Vec<NamedVar> {
        vec![NamedVar::new("head.weight", self.head_w.clone()), NamedVar::new("head.bias", self.head_b.clone())]
    }
    fn linear_head_block(&self, m: usize) -> Option<Tensor> {
        let w = self.head_w.as_tensor();
        if self.transposed {
            w.narrow(0, m * self.d, self.d).and_then(|t| t.t()).ok()
        } else {
            w.narrow(1, m * self.d, self.d).ok()
        }
    }
    fn linear_head_bias(&self, m: usize) -> Option<Tensor> {
        (m < self.enc.len()).then(|| (self.head_b.as_tensor() / self.enc.len() as f64).ok()).flatten()
    }
}

/// In-memory batches per split.
pub struct Data {
    pub train: Vec<(Vec<Tensor>, Tensor)>,
    pub val: Vec<(Vec<Tensor>, Tensor)>,
}

impl Data {
    /// `n_train` / `n_val` random batches of `batch` samples for `model`.
    pub fn random(model: &Toy, n_train: usize, n_val: usize, batch: usize, seed: u64) -> Self {
        let mk = |n: usize, off: u64| {
            (0..n).map(|i| (model.inputs(batch, seed + off + i as u64), targets(batch, model.k))).collect::<Vec<_>>()
        };
        Self { train: mk(n_train, 0), val: mk(n_val, 1000) }
    }
}

impl BatchSource for Data {
    fn num_batches(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train.len(),
            Split::Validation => self.val.len(),
        }
    }
    fn for_each_batch(
        &self,
        split: Split,
        limit: Option<usize>,
        f: &mut dyn FnMut(&[Tensor], &Tensor) -> dgl_core::Result<()>,
    ) -> dgl_core::Result<()> {
        let b = match split {
            Split::Train => &self.train,
            Split::Validation => &self.val,
        };
        for (x, y) in b.iter().take(limit.unwrap_or(usize::MAX)) {
            f(x, y)?;
        }
        Ok(())
    }
}

/// Plain SGD (no momentum, no weight decay) with learning rate `lr`.
pub fn plain_sgd(lr: f64) -> Optimizer {
    Sgd::new(SgdConfig { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }).unwrap().into()
}

/// The context of the first step of a one-step `epoch`: cross-entropy, no clipping.
pub fn context<'a>(model: &'a dyn MultimodalModel, sgd: &'a mut Optimizer, epoch: usize) -> StepContext<'a> {
    StepContext {
        model,
        optimizer: sgd,
        clip_norm: None,
        loss: &CrossEntropy,
        epoch,
        step_in_epoch: 0,
        steps_per_epoch: 1,
        global_step: 0,
    }
}

/// One training step of `method` at `epoch`, without clipping.
pub fn step(
    method: &mut dyn Method,
    model: &dyn MultimodalModel,
    sgd: &mut Optimizer,
    epoch: usize,
    inputs: &[Tensor],
    targets: &Tensor,
) -> StepReport {
    let mut ctx = context(model, sgd, epoch);
    method.train_step(&mut ctx, inputs, targets).unwrap()
}

/// Current values of every parameter, by name.
pub fn values(model: &dyn MultimodalModel) -> Vec<(String, Vec<f64>)> {
    model
        .param_groups()
        .into_iter()
        .flat_map(|g| g.params)
        .map(|p| {
            (
                p.name.clone(),
                p.var.as_tensor().flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
            )
        })
        .collect()
}

/// The flattened values of a tensor.
pub fn vec(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// Asserts two vectors are element-wise close (absolute + relative tolerance).
pub fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())), "{what}[{i}]: {x} vs {y}");
    }
}

/// The parameter update of one plain-SGD step (lr 1) = −gradient, per parameter name.
pub fn grads_by_sgd(
    method: &mut dyn Method,
    model: &dyn MultimodalModel,
    epoch: usize,
    inputs: &[Tensor],
    targets: &Tensor,
) -> (Vec<(String, Vec<f64>)>, StepReport) {
    let before = values(model);
    let mut sgd = plain_sgd(1.0);
    let rep = step(method, model, &mut sgd, epoch, inputs, targets);
    let after = values(model);
    let g = before
        .iter()
        .zip(&after)
        .map(|((n, b), (_, a))| (n.clone(), b.iter().zip(a).map(|(b, a)| b - a).collect()))
        .collect();
    (g, rep)
}

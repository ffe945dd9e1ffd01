//! Bring your own candle model: implement `MultimodalModel`, then train it with DGL's routed step.
//!
//! ```bash
//! cargo run --release -p dgl-core --example own_model
//! ```
//!
//! Two synthetic modalities carry the same 4 classes: a *strong* one (class centres far apart) and a
//! *weak* one (centres close, more noise) — the imbalance the paper is about. Each encoder is a
//! one-layer MLP written with plain candle `Var`s, the head is a linear layer on the concatenated
//! features. The same model is trained twice from the same initialisation: plain multimodal
//! training (every parameter follows CE(h(z))) and DGL (the head follows CE(h(sg z)), each encoder
//! only α·CE(h(0, …, z_m, …, 0))). Printed: multimodal accuracy and the accuracy of each modality
//! inside the model. Measured (2-core CPU, 3 s): plain 99.0 % multimodal, weak modality 53.0 %
//! inside the model; DGL 98.8 % and 60.5 % — the weak encoder learns more when its gradient is its
//! own unimodal loss instead of the fused one the strong modality already satisfies.

use candle_core::{DType, Device, Tensor, Var, D};
use dgl_core::loss::CrossEntropy;
use dgl_core::rng::Rng;
use dgl_core::{evaluate_logits, routed_step, MultimodalModel, NamedVar, Result, Routing, Sgd, SgdConfig};

const CLASSES: usize = 4;
const DIM: usize = 16;
const HIDDEN: usize = 32;

/// Your model: anything that can say which parameters are encoder m's and which are the head's.
struct TwoMlps {
    enc: Vec<(Var, Var)>, // (W (DIM × HIDDEN), b) per modality
    head: (Var, Var),     // (W (2·HIDDEN × CLASSES), b)
}

fn var(rng: &mut Rng, shape: &[usize], scale: f64) -> candle_core::Result<Var> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (scale * rng.normal()) as f32).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu)?)
}

impl TwoMlps {
    fn new(seed: u64) -> candle_core::Result<Self> {
        let mut rng = Rng::new(seed);
        let enc = (0..2)
            .map(|_| Ok((var(&mut rng, &[DIM, HIDDEN], (2.0 / DIM as f64).sqrt())?, var(&mut rng, &[HIDDEN], 0.0)?)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let head = (
            var(&mut rng, &[2 * HIDDEN, CLASSES], (1.0 / (2 * HIDDEN) as f64).sqrt())?,
            var(&mut rng, &[CLASSES], 0.0)?,
        );
        Ok(Self { enc, head })
    }
}

impl MultimodalModel for TwoMlps {
    fn num_modalities(&self) -> usize {
        2
    }
    fn modality_names(&self) -> Vec<String> {
        vec!["strong".into(), "weak".into()]
    }
    fn encode(&self, m: usize, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let (w, b) = &self.enc[m];
        x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?.relu()
    }
    fn fuse(&self, z: &[Tensor], _train: bool) -> candle_core::Result<Tensor> {
        let (w, b) = &self.head;
        Tensor::cat(z, 1)?.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())
    }
    fn encoder_params(&self, m: usize) -> Vec<NamedVar> {
        vec![
            NamedVar::new(format!("enc{m}.w"), self.enc[m].0.clone()),
            NamedVar::new(format!("enc{m}.b"), self.enc[m].1.clone()),
        ]
    }
    fn head_params(&self) -> Vec<NamedVar> {
        vec![NamedVar::new("head.w", self.head.0.clone()), NamedVar::new("head.b", self.head.1.clone())]
    }
}

/// `n` samples: labels, and per modality `centre(label)·separation + noise·N(0, 1)` (the same
/// centres for both modalities here; a real pair would have its own per modality).
fn data(n: usize, seed: u64) -> candle_core::Result<(Vec<Tensor>, Tensor)> {
    // The class centres are the task (one fixed seed); `seed` draws this split's noise.
    let mut task = Rng::new(0);
    let centres: Vec<Vec<f64>> = (0..CLASSES).map(|_| (0..DIM).map(|_| task.normal()).collect()).collect();
    let mut rng = Rng::new(seed);
    let labels: Vec<u32> = (0..n).map(|i| (i % CLASSES) as u32).collect();
    let modality = |rng: &mut Rng, separation: f64, noise: f64| -> candle_core::Result<Tensor> {
        let v: Vec<f32> = labels
            .iter()
            .flat_map(|&y| {
                centres[y as usize].iter().map(|c| (separation * c + noise * rng.normal()) as f32).collect::<Vec<_>>()
            })
            .collect();
        Tensor::from_vec(v, (n, DIM), &Device::Cpu)
    };
    let strong = modality(&mut rng, 1.0, 0.8)?;
    let weak = modality(&mut rng, 0.4, 1.0)?;
    Ok((vec![strong, weak], Tensor::new(labels.as_slice(), &Device::Cpu)?))
}

fn accuracy(logits: &Tensor, y: &Tensor) -> candle_core::Result<f64> {
    let hits = logits.argmax(D::Minus1)?.eq(y)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
    Ok(hits as f64 / y.dim(0)? as f64)
}

fn train(routing: &Routing, label: &str) -> Result<()> {
    let model = TwoMlps::new(7)?;
    let (x, y) = data(800, 1)?;
    let (xt, yt) = data(400, 2)?;
    let mut opt = Sgd::new(SgdConfig { lr: 0.05, ..SgdConfig::default() })?;
    let batch = 50;
    for _epoch in 0..40 {
        for start in (0..800).step_by(batch) {
            let xb: Vec<Tensor> = x.iter().map(|t| t.narrow(0, start, batch)).collect::<candle_core::Result<_>>()?;
            let yb = y.narrow(0, start, batch)?;
            let mut out = routed_step(&model, &xb, &yb, routing, &CrossEntropy)?;
            out.grads.clip_global_norm(40.0)?;
            opt.step(&out.grads)?;
        }
    }
    let (mm, uni) = evaluate_logits(&model, &xt)?;
    println!(
        "{label:>6}: multimodal {:5.1}%   strong inside the model {:5.1}%   weak inside the model {:5.1}%",
        100.0 * accuracy(&mm, &yt)?,
        100.0 * accuracy(&uni[0], &yt)?,
        100.0 * accuracy(&uni[1], &yt)?
    );
    Ok(())
}

fn main() -> Result<()> {
    train(&Routing::plain(), "plain")?;
    train(&Routing::dgl(1.0), "DGL")?;
    Ok(())
}

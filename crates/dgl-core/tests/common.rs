//! A tiny multimodal model for the tests: encoder m = tanh(x W_mᵀ + b_m); concat or sum head.
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};
use dgl_core::rng::Rng;
use dgl_core::{MultimodalModel, NamedVar};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Head {
    Concat,
    Sum,
    /// A cross-modal fusion module before a concat head, listed by stage
    /// (`MultimodalModel::fusion_params`, `GroupKind::Fusion`): with s = Σ_k z_k,
    /// z'_m = z_m ⊙ tanh(s ⊙ u_m), then concat → W, b.
    GatedConcat,
}

pub struct ToyModel {
    pub enc: Vec<(Var, Var)>,
    pub head: Head,
    /// concat: [(Wᵀ, b)]; sum: one (W_mᵀ, b_m) per modality. Stored transposed and used directly as a
    /// matmul operand, so that (as with candle's conv weights) a Var's raw gradient references the
    /// forward activations — the path through which candle 0.11.1 leaks a step's graph.
    pub head_params: Vec<(Var, Var)>,
    /// GatedConcat: u_m per modality (the fusion module after stage 0).
    pub fusion: Vec<Var>,
    pub dims: Vec<usize>,
}

fn randn(rng: &mut Rng, shape: &[usize], scale: f64, dtype: DType) -> Result<Var> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal() * scale).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?)
}

impl ToyModel {
    pub fn new(input_dims: &[usize], d: usize, k: usize, head: Head, seed: u64, dtype: DType) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let enc = input_dims
            .iter()
            .map(|&i| Ok((randn(&mut rng, &[d, i], 0.7, dtype)?, randn(&mut rng, &[d], 0.3, dtype)?)))
            .collect::<Result<Vec<_>>>()?;
        let m = input_dims.len();
        let head_params = match head {
            Head::Concat | Head::GatedConcat => {
                vec![(randn(&mut rng, &[d * m, k], 0.7, dtype)?, randn(&mut rng, &[k], 0.3, dtype)?)]
            }
            Head::Sum => (0..m)
                .map(|_| Ok((randn(&mut rng, &[d, k], 0.7, dtype)?, randn(&mut rng, &[k], 0.3, dtype)?)))
                .collect::<Result<Vec<_>>>()?,
        };
        let fusion = match head {
            Head::GatedConcat => (0..m).map(|_| randn(&mut rng, &[d], 0.8, dtype)).collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        Ok(Self { enc, head, head_params, fusion, dims: vec![d; m] })
    }

    pub fn inputs(&self, input_dims: &[usize], batch: usize, seed: u64, dtype: DType) -> Result<Vec<Tensor>> {
        let mut rng = Rng::new(seed);
        input_dims.iter().map(|&i| Ok(randn(&mut rng, &[batch, i], 1.0, dtype)?.as_tensor().clone())).collect()
    }
}

impl MultimodalModel for ToyModel {
    fn num_modalities(&self) -> usize {
        self.enc.len()
    }
    fn encode(&self, m: usize, x: &Tensor, _train: bool) -> Result<Tensor> {
        let (w, b) = &self.enc[m];
        x.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?.tanh()
    }
    fn fuse(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        match self.head {
            Head::GatedConcat => {
                let s = z.iter().skip(1).try_fold(z[0].clone(), |a, zk| a + zk)?;
                let gated = z
                    .iter()
                    .zip(&self.fusion)
                    .map(|(zm, u)| zm * s.broadcast_mul(u.as_tensor())?.tanh()?)
                    .collect::<Result<Vec<_>>>()?;
                let (w, b) = &self.head_params[0];
                Tensor::cat(&gated, 1)?.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())
            }
            Head::Concat => {
                let (w, b) = &self.head_params[0];
                Tensor::cat(z, 1)?.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())
            }
            Head::Sum => {
                let mut acc: Option<Tensor> = None;
                for (zm, (w, b)) in z.iter().zip(&self.head_params) {
                    let o = zm.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
                    acc = Some(match acc {
                        Some(a) => (a + o)?,
                        None => o,
                    });
                }
                Ok(acc.unwrap())
            }
        }
    }
    fn encoder_params(&self, m: usize) -> Vec<NamedVar> {
        let (w, b) = &self.enc[m];
        vec![NamedVar::new(format!("enc{m}.weight"), w.clone()), NamedVar::new(format!("enc{m}.bias"), b.clone())]
    }
    fn head_params(&self) -> Vec<NamedVar> {
        self.head_params
            .iter()
            .enumerate()
            .flat_map(|(i, (w, b))| {
                [NamedVar::new(format!("head{i}.weight"), w.clone()), NamedVar::new(format!("head{i}.bias"), b.clone())]
            })
            .collect()
    }
    fn fusion_params(&self) -> Vec<(usize, Vec<NamedVar>)> {
        if self.fusion.is_empty() {
            return Vec::new();
        }
        vec![(
            0,
            self.fusion.iter().enumerate().map(|(m, u)| NamedVar::new(format!("fusion.u{m}"), u.clone())).collect(),
        )]
    }
    fn linear_head_block(&self, m: usize) -> Option<Tensor> {
        match self.head {
            Head::GatedConcat => None,
            Head::Concat => {
                let off: usize = self.dims[..m].iter().sum();
                self.head_params[0].0.as_tensor().narrow(0, off, self.dims[m]).and_then(|t| t.t()).ok()
            }
            Head::Sum => self.head_params[m].0.as_tensor().t().ok(),
        }
    }
}

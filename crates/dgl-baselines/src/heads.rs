//! Linear classifier heads owned by a method rather than by the model: the separate unimodal heads
//! `Linear(d_m, K)` of MMPareto's official model (`head_audio`, `head_video`) and of the original
//! G-Blending model (Wang et al. 2020; BalanceBenchmark), and MLA's one shared `Linear(d, K)`.
//!
//! The heads are created on first use from the representations' sizes (seeded), trained through the
//! same [`ParamGrads`] and optimizer as the model (a [`GroupKind::Head`] group; the optimizer keys
//! its state by the parameter names `<prefix>.<i>.weight|bias`), and saved / restored with the
//! method state under the same names.

use candle_core::{DType, Device, Tensor, Var};
use dgl_core::model::GroupKind;
use dgl_core::rng::Rng;
use dgl_core::{Error, MultimodalModel, NamedVar, ParamGroup, Result};
use serde::{Deserialize, Serialize};

use crate::util::{find_state, upload};

/// Where a method's unimodal logits come from (`unimodal_heads` of MMPareto and G-Blending).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnimodalHeads {
    /// A separate `Linear(d_m, K)` per modality owned by the method (default; official MMPareto
    /// model, original G-Blending). The model's head receives only the multimodal loss gradient,
    /// each unimodal head only its own loss's. Needs vector representations z_m (`[B, d_m]`).
    #[default]
    Separate,
    /// h(0, …, z_m, …, 0) through the model's shared head, which then also receives every unimodal
    /// gradient (the DGL paper's remark for its baselines; what dense fusion, whose z_m are feature
    /// maps, has to use).
    #[serde(alias = "zero-mask")]
    SharedMasked,
}

impl UnimodalHeads {
    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            UnimodalHeads::Separate => "separate",
            UnimodalHeads::SharedMasked => "shared-masked",
        }
    }
}

/// How a head is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadInit {
    /// PyTorch's `nn.Linear` default: weight and bias U(±1/√d) (MMPareto's model has no
    /// `weight_init`).
    TorchDefault,
    /// The official `weight_init`: weight xavier-normal N(0, 2/(d + K)), bias 0 (MLA, G-Blending as
    /// the DGL code initialises every Linear).
    XavierNormal,
}

/// The sizes d_m of vector representations `[B, d_m]`; feature maps are refused with an error that
/// names `key` (the configuration switch to change).
pub fn vector_dims(z: &[Tensor], key: &str) -> Result<Vec<usize>> {
    z.iter()
        .enumerate()
        .map(|(m, t)| match t.dims() {
            [_, d] => Ok(*d),
            dims => Err(Error::InvalidInput(format!(
                "`{key}`: method-owned linear heads need vector representations [B, d]; z_{m} is {dims:?} \
                 (dense fusion): use the shared head with masking instead"
            ))),
        })
        .collect()
}

/// A set of linear heads `Linear(d_i, K)` owned by a method.
#[derive(Debug)]
pub struct LinearHeads {
    prefix: &'static str,
    num_classes: usize,
    init: HeadInit,
    seed: u64,
    /// (weight `[K, d_i]`, bias `[K]`) once created or restored.
    heads: Option<Vec<(Var, Var)>>,
}

impl LinearHeads {
    /// Heads named `<prefix>.<i>.weight|bias`, created from `seed` on first use.
    pub fn new(prefix: &'static str, num_classes: usize, init: HeadInit, seed: u64) -> Self {
        Self { prefix, num_classes, init, seed, heads: None }
    }

    fn name(&self, i: usize, what: &str) -> String {
        format!("{}.{i}.{what}", self.prefix)
    }

    /// Whether the heads exist (created or restored).
    pub fn is_ready(&self) -> bool {
        self.heads.is_some()
    }

    /// Creates one head per entry of `dims` on first use, or moves restored heads to `dtype` /
    /// `dev`; refuses heads whose shapes do not match `dims` (e.g. a checkpoint of another model).
    pub fn ensure(&mut self, dims: &[usize], dtype: DType, dev: &Device) -> Result<()> {
        let k = self.num_classes;
        if let Some(h) = &mut self.heads {
            let have: Vec<(usize, usize)> = h.iter().map(|(w, _)| w.dims2()).collect::<candle_core::Result<_>>()?;
            let want: Vec<(usize, usize)> = dims.iter().map(|&d| (k, d)).collect();
            if have != want {
                return Err(Error::InvalidInput(format!(
                    "{}: the method's heads are {have:?} ([K, d]), the model needs {want:?}",
                    self.prefix
                )));
            }
            for (w, b) in h.iter_mut() {
                if !w.device().same_device(dev) || w.dtype() != dtype {
                    *w = Var::from_tensor(&w.as_tensor().to_device(dev)?.to_dtype(dtype)?)?;
                    *b = Var::from_tensor(&b.as_tensor().to_device(dev)?.to_dtype(dtype)?)?;
                }
            }
            return Ok(());
        }
        let mut rng = Rng::derive(self.seed, 0x4845_4144); // "HEAD"
        let mut heads = Vec::with_capacity(dims.len());
        for &d in dims {
            let (w, b): (Vec<f64>, Vec<f64>) = match self.init {
                HeadInit::TorchDefault => {
                    let bound = 1.0 / (d as f64).sqrt();
                    (
                        (0..k * d).map(|_| rng.uniform_range(-bound, bound)).collect(),
                        (0..k).map(|_| rng.uniform_range(-bound, bound)).collect(),
                    )
                }
                HeadInit::XavierNormal => {
                    let std = (2.0 / (d + k) as f64).sqrt();
                    ((0..k * d).map(|_| rng.normal() * std).collect(), vec![0.0; k])
                }
            };
            heads.push((
                Var::from_tensor(&upload(w, &[k, d], dtype, dev)?)?,
                Var::from_tensor(&upload(b, &[k], dtype, dev)?)?,
            ));
        }
        self.heads = Some(heads);
        Ok(())
    }

    /// One head per modality, `Linear(d_m, K)` for the vector representations `z` (see
    /// [`vector_dims`]; `key` names the switch in the error for feature maps).
    pub fn ensure_per_modality(&mut self, z: &[Tensor], key: &str) -> Result<()> {
        let dims = vector_dims(z, key)?;
        self.ensure(&dims, z[0].dtype(), z[0].device())
    }

    fn head(&self, i: usize) -> Result<&(Var, Var)> {
        self.heads.as_ref().and_then(|h| h.get(i)).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: head {i} does not exist yet (train a step or load the method state first)",
                self.prefix
            ))
        })
    }

    /// Head `i` applied to `z` (`[B, d_i]`): z Wᵀ + b.
    pub fn logits(&self, i: usize, z: &Tensor) -> Result<Tensor> {
        let (w, b) = self.head(i)?;
        Ok(z.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?)
    }

    /// The heads' parameters (`<prefix>.<i>.weight|bias`).
    pub fn params(&self) -> Vec<NamedVar> {
        self.heads
            .iter()
            .flatten()
            .enumerate()
            .flat_map(|(i, (w, b))| {
                [NamedVar::new(self.name(i, "weight"), w.clone()), NamedVar::new(self.name(i, "bias"), b.clone())]
            })
            .collect()
    }

    /// The heads as a parameter group (head kind), once they exist.
    pub fn group(&self) -> Option<ParamGroup> {
        self.heads.as_ref().map(|_| ParamGroup { kind: GroupKind::Head, params: self.params() })
    }

    /// The model's parameter groups followed by the heads'.
    pub fn groups_with(&self, model: &dyn MultimodalModel) -> Vec<ParamGroup> {
        let mut groups = model.param_groups();
        groups.extend(self.group());
        groups
    }

    /// Copies of the heads' tensors under their parameter names.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.params().into_iter().map(|p| Ok((p.name, p.var.as_tensor().copy()?))).collect()
    }

    /// Restores what [`LinearHeads::state`] returned (nothing when the state has no heads). Heads
    /// that already exist keep their `Var`s (values are set in place).
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut loaded = Vec::new();
        while let (Some(w), Some(b)) =
            (find_state(state, &self.name(loaded.len(), "weight")), find_state(state, &self.name(loaded.len(), "bias")))
        {
            let (k, _) = w.dims2()?;
            if k != self.num_classes || b.dims() != [k] {
                return Err(Error::InvalidInput(format!(
                    "{}: a saved head is {:?} + {:?} for {} classes",
                    self.prefix,
                    w.dims(),
                    b.dims(),
                    self.num_classes
                )));
            }
            loaded.push((w.clone(), b.clone()));
        }
        if loaded.is_empty() {
            return Ok(());
        }
        match &self.heads {
            Some(cur)
                if cur.len() == loaded.len()
                    && cur.iter().zip(&loaded).all(|((cw, _), (w, _))| cw.dims() == w.dims()) =>
            {
                for ((cw, cb), (w, b)) in cur.iter().zip(&loaded) {
                    cw.set(&w.to_device(cw.device())?.to_dtype(cw.dtype())?)?;
                    cb.set(&b.to_device(cb.device())?.to_dtype(cb.dtype())?)?;
                }
            }
            _ => {
                self.heads = Some(
                    loaded
                        .iter()
                        .map(|(w, b)| Ok((Var::from_tensor(w)?, Var::from_tensor(b)?)))
                        .collect::<Result<_>>()?,
                )
            }
        }
        Ok(())
    }
}

/// The unimodal branches of a method: separate method-owned heads or the masked shared head.
#[derive(Debug)]
pub struct UnimodalBranches {
    pub mode: UnimodalHeads,
    pub heads: LinearHeads,
    /// The configuration key of `mode`, for error messages.
    key: &'static str,
}

impl UnimodalBranches {
    /// Branches of `mode`; the separate heads are `<prefix>.<m>`, created by
    /// [`UnimodalBranches::prepare`].
    pub fn new(mode: UnimodalHeads, key: &'static str, heads: LinearHeads) -> Self {
        Self { mode, heads, key }
    }

    /// Creates the separate heads from the representations on first use (no-op when masking).
    pub fn prepare(&mut self, z: &[Tensor]) -> Result<()> {
        match self.mode {
            UnimodalHeads::Separate => self.heads.ensure_per_modality(z, self.key),
            UnimodalHeads::SharedMasked => Ok(()),
        }
    }

    /// The logits of modality `m`: head_m(z_m), or h(0, …, z_m, …, 0).
    pub fn logits(&self, model: &dyn MultimodalModel, z: &[Tensor], m: usize, train: bool) -> Result<Tensor> {
        match self.mode {
            UnimodalHeads::Separate => self.heads.logits(m, &z[m]),
            UnimodalHeads::SharedMasked => Ok(model.fuse_only(z, m, train)?),
        }
    }

    /// The model's parameter groups and, with separate heads, theirs.
    pub fn groups(&self, model: &dyn MultimodalModel) -> Vec<ParamGroup> {
        self.heads.groups_with(model)
    }

    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.heads.state()
    }

    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.heads.load_state(state)
    }
}

/// Refuses separate unimodal heads on a dense fusion model (z_m is a feature map there): the
/// paper's dense-fusion table takes the unimodal logits from the shared model with the other
/// modalities zeroed, `unimodal_heads = "shared-masked"`.
pub(crate) fn check_heads_fit(
    method: &str,
    heads: UnimodalHeads,
    model: &crate::spec::ModelFacts<'_>,
) -> dgl_core::Result<()> {
    if heads == UnimodalHeads::Separate && model.dense {
        return Err(dgl_core::Error::InvalidInput(format!(
            "`{method}` with separate unimodal heads cannot train with model.fusion = \"{}\" (z_m is a feature map \
             there): set method.unimodal_heads = \"shared-masked\", the paper's setting for dense fusion",
            model.head
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn init_shapes_state_and_refusals() {
        let dev = Device::Cpu;
        let mut h = LinearHeads::new("t.head", 3, HeadInit::XavierNormal, 7);
        assert!(!h.is_ready());
        assert!(h.logits(0, &Tensor::zeros((2, 4), DType::F64, &dev).unwrap()).is_err());
        h.ensure(&[4, 5], DType::F64, &dev).unwrap();
        let names: Vec<String> = h.params().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["t.head.0.weight", "t.head.0.bias", "t.head.1.weight", "t.head.1.bias"]);
        assert_eq!(vec(h.params()[1].var.as_tensor()), vec![0.0; 3], "xavier: zero bias");
        let z = Tensor::ones((2, 5), DType::F64, &dev).unwrap();
        let l = vec(&h.logits(1, &z).unwrap());
        let w = vec(h.params()[2].var.as_tensor());
        let row0: f64 = w[..5].iter().sum();
        assert!((l[0] - row0).abs() < 1e-12 && (l[3] - row0).abs() < 1e-12);
        // Another model's sizes are refused; the same ones are kept.
        assert!(h.ensure(&[4, 6], DType::F64, &dev).is_err());
        h.ensure(&[4, 5], DType::F64, &dev).unwrap();
        // State round trip into fresh heads, and in place into existing ones.
        let st = h.state().unwrap();
        let mut fresh = LinearHeads::new("t.head", 3, HeadInit::TorchDefault, 1);
        fresh.load_state(&st).unwrap();
        assert_eq!(vec(&fresh.logits(1, &z).unwrap()), l);
        let mut other = LinearHeads::new("t.head", 3, HeadInit::TorchDefault, 1);
        other.ensure(&[4, 5], DType::F64, &dev).unwrap();
        let var = other.params()[2].var.clone();
        other.load_state(&st).unwrap();
        assert_eq!(vec(var.as_tensor()), w, "same Var, new values");
        let mut wrong_k = LinearHeads::new("t.head", 4, HeadInit::TorchDefault, 1);
        assert!(wrong_k.load_state(&st).is_err());
        // Feature maps are refused, naming the key.
        let e = vector_dims(&[Tensor::zeros((2, 3, 4, 4), DType::F64, &dev).unwrap()], "x.unimodal_heads")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.unimodal_heads") && e.contains("[2, 3, 4, 4]"), "{e}");
    }

    #[test]
    fn torch_default_bounds() {
        let mut h = LinearHeads::new("t", 2, HeadInit::TorchDefault, 3);
        h.ensure(&[16], DType::F64, &Device::Cpu).unwrap();
        for p in h.params() {
            assert!(vec(p.var.as_tensor()).iter().all(|v| v.abs() <= 0.25), "{}", p.name);
        }
    }
}

//! Fusion modules + heads h(z_1, …, z_M) → logits (paper §3.1; official
//! `models/fusion_modules.py`, OGM-GE's `FiLM`).
//!
//! | head | M | computation | names (under `fusion_module.`) |
//! |---|---|---|---|
//! | [`ConcatFusion`] | ≥ 2 | W [z_1; …; z_M] + b | `fc_out` |
//! | [`SumFusion`] | ≥ 2 | Σ_m (W_m z_m + b_m) | `fc_x`, `fc_y` (M = 2), else `fc_m{i}` |
//! | [`GatedFusion`] | 2 | fc_out(σ(fc_x(z_1)) ⊙ fc_y(z_2)) | `fc_x`, `fc_y`, `fc_out` |
//! | [`FilmFusion`] | 2 | fc_out(γ(z_1) ⊙ z_2 + β(z_1)), [γ; β] = fc(z_1) | `fc`, `fc_out` |
//!
//! Every head is a plain function of its inputs: modality dropout h(0, …, z_m, …, 0) is simply the
//! forward on zero tensors, and stop-gradients (DGL's sg z, sg head) are applied by the caller
//! (`dgl_core::routing`). None of the official DGL-specific variants (`*_DGL` classes) is copied;
//! see `docs/fusion.md` for why and what differs.

use candle_core::{bail, Result, Tensor};
use dgl_core::NamedVar;
use serde::{Deserialize, Serialize};

use crate::error::config_err;
use crate::init::InitCtx;
use crate::layers::{prefixed, Linear};

/// Which fusion head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionKind {
    /// Concatenation + Linear (the paper's default).
    #[default]
    Concat,
    /// One Linear per modality, summed.
    Sum,
    /// Gated fusion (M = 2).
    Gated,
    /// FiLM (M = 2), OGM-GE's real FiLM.
    Film,
    /// MMTM dense fusion between ResNet-18 trunks, after layer2, layer3 and layer4 (paper Table 2;
    /// [`crate::mmtm`]): not a head on pooled features — the encoders end at layer2 and z_m is a map.
    Mmtm,
    /// MLP-Mixer fusion over per-modality sequences, any M (paper Table 2, right; CubeMLP;
    /// [`crate::mixer`]): z_m is a (L, d) sequence, mixed along sequence, modality and channels.
    Mixer,
    /// ESANet-style RGB-D segmentation (paper Table 5; [`crate::esanet`]): unfused ResNet encoders,
    /// squeeze-and-excitation fusion at four scales feeding a context module and a decoder;
    /// per-pixel logits.
    Esanet,
}

impl FusionKind {
    /// The configuration name (`model.fusion`).
    pub fn as_str(self) -> &'static str {
        match self {
            FusionKind::Concat => "concat",
            FusionKind::Sum => "sum",
            FusionKind::Gated => "gated",
            FusionKind::Film => "film",
            FusionKind::Mmtm => "mmtm",
            FusionKind::Mixer => "mixer",
            FusionKind::Esanet => "esanet",
        }
    }

    /// Whether the fusion is dense (between encoder stages or over a sequence, z_m a feature map or
    /// a sequence) rather than a head on pooled feature vectors: methods with per-modality heads on
    /// z_m cannot use it.
    pub fn is_dense(self) -> bool {
        matches!(self, FusionKind::Mmtm | FusionKind::Mixer | FusionKind::Esanet)
    }

    /// Whether the head is linear in each z_m, h(z) = Σ_m (W^{(m)} z_m + b^{(m)}) (concat, sum):
    /// the heads whose per-modality terms OGM's official logits and the Fig. 3(a) statistic use.
    pub fn is_linear(self) -> bool {
        matches!(self, FusionKind::Concat | FusionKind::Sum)
    }
}

/// A fusion module + head.
pub trait FusionHead: Send + Sync {
    /// logits = h(z_1, …, z_M); z_m is (B, d_m). Any z_m may be all zeros.
    fn forward_t(&self, z: &[Tensor], train: bool) -> Result<Tensor>;

    /// d_m of every input, in modality order.
    fn input_dims(&self) -> &[usize];

    /// K, the number of logits.
    fn num_classes(&self) -> usize;

    /// Trainable parameters, names relative to the head (e.g. `fc_out.weight`); the model prepends
    /// `fusion_module.`.
    fn params(&self) -> Vec<NamedVar>;

    /// Non-trainable state (none for the built-in heads).
    fn buffers(&self) -> Vec<NamedVar> {
        Vec::new()
    }

    /// For a head that is linear in each z_m, the K × d_m block W^{(m)} multiplying z_m (a view of
    /// the live weight, not detached). `None` for non-linear heads.
    fn linear_block(&self, _modality: usize) -> Option<Tensor> {
        None
    }

    /// For a head linear in each z_m, h(z) = Σ_m (W^{(m)} z_m + b^{(m)}): the bias b^{(m)} of
    /// modality m's term (see `MultimodalModel::linear_head_bias`). `None` for non-linear heads.
    fn linear_bias(&self, _modality: usize) -> Option<Tensor> {
        None
    }

    /// A short description for logs.
    fn describe(&self) -> String;
}

/// Checks that `z` holds one (B, d_m) tensor per modality with a common B.
pub fn check_inputs(z: &[Tensor], dims: &[usize], head: &str) -> Result<()> {
    if z.len() != dims.len() {
        bail!("{head} fusion expects {} representations, got {}", dims.len(), z.len())
    }
    let b = z[0].dim(0)?;
    for (m, (t, &d)) in z.iter().zip(dims).enumerate() {
        if t.rank() != 2 || t.dim(0)? != b || t.dim(1)? != d {
            bail!("{head} fusion: z_{m} has shape {:?}, expected ({b}, {d})", t.shape())
        }
    }
    Ok(())
}

/// Concatenation fusion: logits = W [z_1; …; z_M] + b, W ∈ R^{K × Σ d_m}
/// (official `ConcatFusion`, `fc_out = nn.Linear(1024, K)`).
///
/// With every z_j = 0 but z_m: logits = W^{(m)} z_m + b (full bias), the paper's unimodal logits.
#[derive(Clone, Debug)]
pub struct ConcatFusion {
    dims: Vec<usize>,
    fc_out: Linear,
}

impl ConcatFusion {
    pub fn new(ctx: &InitCtx, dims: &[usize], num_classes: usize) -> crate::Result<Self> {
        check_dims(dims, 2, None, "concat")?;
        let total: usize = dims.iter().sum();
        Ok(Self { dims: dims.to_vec(), fc_out: Linear::new(ctx, "fc_out", total, num_classes)? })
    }

    pub fn fc_out(&self) -> &Linear {
        &self.fc_out
    }

    /// Column offset of W^{(m)} in W.
    pub fn block_offset(&self, modality: usize) -> usize {
        self.dims[..modality].iter().sum()
    }
}

impl FusionHead for ConcatFusion {
    fn forward_t(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        check_inputs(z, &self.dims, "concat")?;
        self.fc_out.forward(&Tensor::cat(z, 1)?)
    }

    fn input_dims(&self) -> &[usize] {
        &self.dims
    }

    fn num_classes(&self) -> usize {
        self.fc_out.out_dim()
    }

    fn params(&self) -> Vec<NamedVar> {
        prefixed("fc_out", self.fc_out.params())
    }

    fn linear_block(&self, modality: usize) -> Option<Tensor> {
        let d = *self.dims.get(modality)?;
        self.fc_out.weight().as_tensor().narrow(1, self.block_offset(modality), d).ok()
    }

    /// b/M: the shared bias split evenly between the modalities' terms.
    fn linear_bias(&self, modality: usize) -> Option<Tensor> {
        let m = self.dims.len();
        (modality < m).then(|| self.fc_out.bias().as_tensor() / m as f64).and_then(|t| t.ok())
    }

    fn describe(&self) -> String {
        format!("concat({:?} -> {})", self.dims, self.num_classes())
    }
}

/// Sum fusion: logits = Σ_m (W_m z_m + b_m) (official `SumFusion`: `fc_x(x) + fc_y(y)`).
///
/// With every z_j = 0 but z_m: W_m z_m + Σ_j b_j (all biases; the official `SumFusion_DGL` uses
/// `fc_x(a)` alone, i.e. only b_m — see `docs/fusion.md`).
#[derive(Clone, Debug)]
pub struct SumFusion {
    dims: Vec<usize>,
    fcs: Vec<(String, Linear)>,
}

impl SumFusion {
    /// Layer names: `fc_x`, `fc_y` for M = 2 (official), `fc_m0`, `fc_m1`, … otherwise.
    pub fn layer_name(num_modalities: usize, m: usize) -> String {
        match (num_modalities, m) {
            (2, 0) => "fc_x".into(),
            (2, 1) => "fc_y".into(),
            _ => format!("fc_m{m}"),
        }
    }

    pub fn new(ctx: &InitCtx, dims: &[usize], num_classes: usize) -> crate::Result<Self> {
        check_dims(dims, 2, None, "sum")?;
        let fcs = dims
            .iter()
            .enumerate()
            .map(|(m, &d)| {
                let name = Self::layer_name(dims.len(), m);
                let l = Linear::new(ctx, &name, d, num_classes)?;
                Ok((name, l))
            })
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(Self { dims: dims.to_vec(), fcs })
    }

    pub fn layer(&self, m: usize) -> &Linear {
        &self.fcs[m].1
    }
}

impl FusionHead for SumFusion {
    fn forward_t(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        check_inputs(z, &self.dims, "sum")?;
        let mut acc = self.fcs[0].1.forward(&z[0])?;
        for ((_, fc), zm) in self.fcs.iter().zip(z).skip(1) {
            acc = (acc + fc.forward(zm)?)?;
        }
        Ok(acc)
    }

    fn input_dims(&self) -> &[usize] {
        &self.dims
    }

    fn num_classes(&self) -> usize {
        self.fcs[0].1.out_dim()
    }

    fn params(&self) -> Vec<NamedVar> {
        self.fcs.iter().flat_map(|(name, l)| prefixed(name, l.params())).collect()
    }

    fn linear_block(&self, modality: usize) -> Option<Tensor> {
        self.fcs.get(modality).map(|(_, l)| l.weight().as_tensor().clone())
    }

    /// b_m, layer m's own bias.
    fn linear_bias(&self, modality: usize) -> Option<Tensor> {
        self.fcs.get(modality).map(|(_, l)| l.bias().as_tensor().clone())
    }

    fn describe(&self) -> String {
        format!("sum({:?} -> {})", self.dims, self.num_classes())
    }
}

/// Gated fusion, M = 2 (official vanilla `GatedFusion`): o_x = fc_x(z_1), o_y = fc_y(z_2) (both
/// d → hidden), then `x_gate` (default): fc_out(σ(o_x) ⊙ o_y); otherwise fc_out(o_x ⊙ σ(o_y)).
///
/// All of fc_x, fc_y, fc_out belong to the head and are trained by whatever loss the routing sends
/// to the head (unlike the official `GatedFusion_DGL`, where fc_x / fc_y never get a gradient).
#[derive(Clone, Debug)]
pub struct GatedFusion {
    dims: Vec<usize>,
    fc_x: Linear,
    fc_y: Linear,
    fc_out: Linear,
    x_gate: bool,
}

impl GatedFusion {
    pub fn new(ctx: &InitCtx, dims: &[usize], hidden: usize, num_classes: usize, x_gate: bool) -> crate::Result<Self> {
        check_dims(dims, 2, Some(2), "gated")?;
        if hidden == 0 {
            return config_err("gated fusion: hidden size must be > 0");
        }
        Ok(Self {
            dims: dims.to_vec(),
            fc_x: Linear::new(ctx, "fc_x", dims[0], hidden)?,
            fc_y: Linear::new(ctx, "fc_y", dims[1], hidden)?,
            fc_out: Linear::new(ctx, "fc_out", hidden, num_classes)?,
            x_gate,
        })
    }
}

impl FusionHead for GatedFusion {
    fn forward_t(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        check_inputs(z, &self.dims, "gated")?;
        let ox = self.fc_x.forward(&z[0])?;
        let oy = self.fc_y.forward(&z[1])?;
        let fused =
            if self.x_gate { candle_nn::ops::sigmoid(&ox)?.mul(&oy)? } else { ox.mul(&candle_nn::ops::sigmoid(&oy)?)? };
        self.fc_out.forward(&fused)
    }

    fn input_dims(&self) -> &[usize] {
        &self.dims
    }

    fn num_classes(&self) -> usize {
        self.fc_out.out_dim()
    }

    fn params(&self) -> Vec<NamedVar> {
        let mut v = prefixed("fc_x", self.fc_x.params());
        v.extend(prefixed("fc_y", self.fc_y.params()));
        v.extend(prefixed("fc_out", self.fc_out.params()));
        v
    }

    fn describe(&self) -> String {
        format!(
            "gated({:?}, hidden {}, gate on {} -> {})",
            self.dims,
            self.fc_out.in_dim(),
            if self.x_gate { "z_1" } else { "z_2" },
            self.num_classes()
        )
    }
}

/// FiLM, M = 2 (OGM-GE's `FiLM`, a real feature-wise linear modulation): with `x_film` (default)
/// the first modality conditions the second: [γ; β] = fc(z_1) (fc: d_1 → 2·d_2),
/// logits = fc_out(γ ⊙ z_2 + β) (fc_out: d_2 → K); otherwise the roles are swapped.
///
/// Not the official GDL `FiLM` / `FiLM_DGL` (a 512·512 → 512 bilinear outer product, with a
/// self-outer-product "unimodal" path): see `docs/fusion.md`.
#[derive(Clone, Debug)]
pub struct FilmFusion {
    dims: Vec<usize>,
    fc: Linear,
    fc_out: Linear,
    x_film: bool,
}

impl FilmFusion {
    pub fn new(ctx: &InitCtx, dims: &[usize], num_classes: usize, x_film: bool) -> crate::Result<Self> {
        check_dims(dims, 2, Some(2), "film")?;
        let (d_film, d_target) = if x_film { (dims[0], dims[1]) } else { (dims[1], dims[0]) };
        Ok(Self {
            dims: dims.to_vec(),
            fc: Linear::new(ctx, "fc", d_film, 2 * d_target)?,
            fc_out: Linear::new(ctx, "fc_out", d_target, num_classes)?,
            x_film,
        })
    }
}

impl FusionHead for FilmFusion {
    fn forward_t(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        check_inputs(z, &self.dims, "film")?;
        let (film, target) = if self.x_film { (&z[0], &z[1]) } else { (&z[1], &z[0]) };
        let d = target.dim(1)?;
        let gb = self.fc.forward(film)?;
        let gamma = gb.narrow(1, 0, d)?;
        let beta = gb.narrow(1, d, d)?;
        self.fc_out.forward(&(gamma.mul(target)? + beta)?)
    }

    fn input_dims(&self) -> &[usize] {
        &self.dims
    }

    fn num_classes(&self) -> usize {
        self.fc_out.out_dim()
    }

    fn params(&self) -> Vec<NamedVar> {
        let mut v = prefixed("fc", self.fc.params());
        v.extend(prefixed("fc_out", self.fc_out.params()));
        v
    }

    fn describe(&self) -> String {
        format!(
            "film({:?}, {} conditions {} -> {})",
            self.dims,
            if self.x_film { "z_1" } else { "z_2" },
            if self.x_film { "z_2" } else { "z_1" },
            self.num_classes()
        )
    }
}

fn check_dims(dims: &[usize], min: usize, max: Option<usize>, head: &str) -> crate::Result<()> {
    if dims.len() < min || max.is_some_and(|mx| dims.len() > mx) {
        let want = match max {
            Some(mx) if mx == min => format!("exactly {min}"),
            _ => format!("at least {min}"),
        };
        return config_err(format!("{head} fusion needs {want} modalities, got {}", dims.len()));
    }
    if dims.contains(&0) {
        return config_err(format!("{head} fusion: zero input size in {dims:?}"));
    }
    Ok(())
}

/// Options of the non-linear heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadOptions {
    /// Hidden size of [`GatedFusion`] (official 512); `None` = d_1.
    pub hidden: Option<usize>,
    /// Gated: gate from z_1 (`x_gate`); FiLM: z_1 conditions z_2 (`x_film`). Official default true.
    pub condition_on_first: bool,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self { hidden: None, condition_on_first: true }
    }
}

/// Trainable parameters of a head of `kind` on inputs of sizes `dims`, without building it (what
/// [`build_head`] would allocate; 0 for a head it would refuse).
pub fn head_param_count(kind: FusionKind, dims: &[usize], num_classes: usize, options: HeadOptions) -> u128 {
    let k = num_classes as u128;
    let linear = |i: u128, o: u128| i * o + o;
    let d: Vec<u128> = dims.iter().map(|&d| d as u128).collect();
    match (kind, d.as_slice()) {
        (FusionKind::Concat, _) => linear(d.iter().sum(), k),
        (FusionKind::Sum, _) => d.iter().map(|&d| linear(d, k)).sum(),
        (FusionKind::Gated, [d0, d1]) => {
            let h = options.hidden.map_or(*d0, |h| h as u128);
            linear(*d0, h) + linear(*d1, h) + linear(h, k)
        }
        (FusionKind::Film, [d0, d1]) => {
            let (film, target) = if options.condition_on_first { (*d0, *d1) } else { (*d1, *d0) };
            linear(film, 2 * target) + linear(target, k)
        }
        // Three MMTM blocks on C = d/4, d/2, d channels per modality (hidden = ΣC), and the head.
        (FusionKind::Mmtm, _) => {
            let blocks: u128 = [4u128, 2, 1]
                .iter()
                .map(|&div| {
                    let c: Vec<u128> = d.iter().map(|&d| d / div).collect();
                    let total: u128 = c.iter().sum();
                    linear(total, total) + c.iter().map(|&c| linear(total, c)).sum::<u128>()
                })
                .sum();
            blocks + linear(d.iter().sum(), k)
        }
        _ => 0,
    }
}

/// Builds a head of `kind` for inputs of sizes `dims`; `ctx` should be the `fusion_module` context.
pub fn build_head(
    ctx: &InitCtx,
    kind: FusionKind,
    dims: &[usize],
    num_classes: usize,
    options: HeadOptions,
) -> crate::Result<Box<dyn FusionHead>> {
    if num_classes == 0 {
        return config_err("num_classes must be > 0");
    }
    Ok(match kind {
        FusionKind::Concat => Box::new(ConcatFusion::new(ctx, dims, num_classes)?),
        FusionKind::Sum => Box::new(SumFusion::new(ctx, dims, num_classes)?),
        FusionKind::Gated => {
            let hidden = options.hidden.unwrap_or_else(|| dims.first().copied().unwrap_or(0));
            Box::new(GatedFusion::new(ctx, dims, hidden, num_classes, options.condition_on_first)?)
        }
        FusionKind::Film => Box::new(FilmFusion::new(ctx, dims, num_classes, options.condition_on_first)?),
        FusionKind::Mmtm | FusionKind::Mixer | FusionKind::Esanet => {
            return config_err(format!(
                "{} fusion is a model, not a head on pooled features: build it with build_model",
                kind.as_str()
            ))
        }
    })
}

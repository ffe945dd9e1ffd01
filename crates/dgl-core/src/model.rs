//! The model interface: any multimodal model split into per-modality encoders and a fusion
//! module + head (paper §3.1: z_m = φ_m(θ_m, x_m), logits = h(θ_τ, W, b; z_1, …, z_M)).
//!
//! The split point is the implementor's choice. Late fusion (the paper's concat default) puts it at
//! the pooled features; dense / intermediate fusion (MMTM-style) returns early feature maps from
//! [`MultimodalModel::encode`] and puts the fusion blocks and the remaining layers in
//! [`MultimodalModel::fuse`]. The "logits" need not be a vector per sample: a segmentation head
//! returns per-pixel logits and the step takes the loss as a parameter ([`crate::loss::Loss`]).

use candle_core::{Result, Tensor, Var};

/// A trainable parameter and its stable name (used for optimizer state and checkpoints; the
/// names of `dgl-models` follow PyTorch's `state_dict` keys).
#[derive(Clone, Debug)]
pub struct NamedVar {
    pub name: String,
    pub var: Var,
}

impl NamedVar {
    pub fn new(name: impl Into<String>, var: Var) -> Self {
        Self { name: name.into(), var }
    }
}

/// Which part of the model a parameter group is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// θ_m, the encoder of modality m.
    Encoder(usize),
    /// A fusion module that sits between encoder stages (dense fusion: MMTM after a ResNet stage,
    /// ESANet's RGB-D fusion), after stage `after_stage` of the encoders. Part of h (θ_τ): DGL
    /// trains it, as the head, with L_d only.
    Fusion { after_stage: usize },
    /// θ_τ, W, b: the fusion module and the head (of a late-fusion model: all of h).
    Head,
}

impl GroupKind {
    /// Whether the group is part of h, the fusion modules and the head (what L_d trains under DGL),
    /// rather than an encoder.
    pub fn is_fusion_or_head(self) -> bool {
        !matches!(self, GroupKind::Encoder(_))
    }
}

/// A named group of trainable parameters.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub kind: GroupKind,
    pub params: Vec<NamedVar>,
}

/// A multimodal model split into encoders φ_m and a fusion module + head h.
///
/// Only trainable parameters are listed by [`MultimodalModel::encoder_params`] and
/// [`MultimodalModel::head_params`]; non-trainable state such as BatchNorm running statistics must
/// not be listed, so the optimizer never decays or steps it.
pub trait MultimodalModel {
    /// M ≥ 2.
    fn num_modalities(&self) -> usize;

    /// Human-readable modality names (`audio`, `visual`, …), used in logs and metrics.
    fn modality_names(&self) -> Vec<String> {
        (0..self.num_modalities()).map(|m| format!("m{m}")).collect()
    }

    /// z_m = φ_m(x_m). `train` selects training behaviour (BatchNorm batch statistics, dropout).
    fn encode(&self, modality: usize, x: &Tensor, train: bool) -> Result<Tensor>;

    /// logits = h(z_1, …, z_M). Must accept zero tensors in place of any z_m (modality dropout).
    fn fuse(&self, z: &[Tensor], train: bool) -> Result<Tensor>;

    /// Trainable parameters of encoder m.
    fn encoder_params(&self, modality: usize) -> Vec<NamedVar>;

    /// Trainable parameters of the head (and of the fusion module, unless the model lists its
    /// fusion modules by stage in [`MultimodalModel::fusion_params`]).
    fn head_params(&self) -> Vec<NamedVar>;

    /// Trainable parameters of fusion modules placed between encoder stages, each with the stage
    /// it follows (`GroupKind::Fusion`). Default: none (late fusion: the fusion module is in
    /// [`MultimodalModel::head_params`]).
    fn fusion_params(&self) -> Vec<(usize, Vec<NamedVar>)> {
        Vec::new()
    }

    /// Every tensor of the model's state for checkpoints and snapshots: the trainable parameters
    /// *and* non-trainable buffers (BatchNorm running statistics). Defaults to the trainable ones.
    fn state_vars(&self) -> Vec<NamedVar> {
        self.param_groups().into_iter().flat_map(|g| g.params).collect()
    }

    /// For a linear late-fusion head (concat), the block W^{(m)} ∈ R^{K × d_m} of the head weight
    /// that multiplies z_m. Used by the Fig. 3(a) diagnostic; `None` for other heads.
    fn linear_head_block(&self, _modality: usize) -> Option<Tensor> {
        None
    }

    /// For a head that is a sum of per-modality affine terms, h(z) = Σ_m (W^{(m)} z_m + b^{(m)}),
    /// the bias b^{(m)} ∈ R^K of modality m's term: b_m, the own bias of a sum head's layer m; the
    /// shared bias split evenly, b/M, for a concat head (OGM-GE's `fc_out.bias / 2`). With
    /// [`MultimodalModel::linear_head_block`] it gives OGM's per-modality logits W^{(m)} z_m + b^{(m)}.
    /// `None` for other heads (and by default).
    fn linear_head_bias(&self, _modality: usize) -> Option<Tensor> {
        None
    }

    /// All parameter groups: encoders 0..M, the fusion modules between stages (if any), then the
    /// head.
    fn param_groups(&self) -> Vec<ParamGroup> {
        let mut groups: Vec<ParamGroup> = (0..self.num_modalities())
            .map(|m| ParamGroup { kind: GroupKind::Encoder(m), params: self.encoder_params(m) })
            .collect();
        for (after_stage, params) in self.fusion_params() {
            groups.push(ParamGroup { kind: GroupKind::Fusion { after_stage }, params });
        }
        groups.push(ParamGroup { kind: GroupKind::Head, params: self.head_params() });
        groups
    }

    /// Encodes every modality: z = (φ_1(x_1), …, φ_M(x_M)).
    fn encode_all(&self, inputs: &[Tensor], train: bool) -> Result<Vec<Tensor>> {
        if inputs.len() != self.num_modalities() {
            candle_core::bail!(
                "the model has {} modalities but {} inputs were given",
                self.num_modalities(),
                inputs.len()
            )
        }
        inputs.iter().enumerate().map(|(m, x)| self.encode(m, x, train)).collect()
    }

    /// The modality-dropout forward h(0, …, z_m, …, 0): every representation but z_m is zeroed.
    fn fuse_only(&self, z: &[Tensor], modality: usize, train: bool) -> Result<Tensor> {
        self.fuse(&keep_only(z, modality)?, train)
    }
}

/// (0, …, z_m, …, 0): every representation but `modality` replaced by zeros of the same shape.
pub fn keep_only(z: &[Tensor], modality: usize) -> Result<Vec<Tensor>> {
    z.iter().enumerate().map(|(i, t)| if i == modality { Ok(t.clone()) } else { t.zeros_like() }).collect()
}

/// (sg z_1, …, sg z_M).
pub fn detach_all(z: &[Tensor]) -> Vec<Tensor> {
    z.iter().map(|t| t.detach()).collect()
}

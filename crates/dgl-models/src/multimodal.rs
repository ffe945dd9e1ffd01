//! Complete models implementing [`dgl_core::MultimodalModel`]:
//!
//! * [`FusionModel`]: M encoders φ_m + one fusion head h (the official `AVClassifier_DGL`
//!   generalised to M modalities); names `<modality>_net.*` and `fusion_module.*`, as the
//!   official `audio_net` / `visual_net` / `fusion_module` attributes;
//! * [`UnimodalClassifier`]: one encoder + its own `Linear(d, K)` (`head.*`), the paper's
//!   "Audio-only" / "Visual-only" rows (official `AVClassifier_DGL` with `--modality audio|visual`).

use candle_core::{bail, Result, Tensor};
use dgl_core::{MultimodalModel, NamedVar};

use crate::encoder::Encoder;
use crate::error::config_err;
use crate::fusion::FusionHead;
use crate::init::InitCtx;
use crate::layers::{prefixed, Linear};

/// Parameter-name prefix of a modality's encoder: `<name>_net` (`audio_net`, `visual_net`, …).
pub fn encoder_prefix(modality: &str) -> String {
    format!("{modality}_net")
}

/// Prefix of the fusion module / head of a [`FusionModel`].
pub const FUSION_PREFIX: &str = "fusion_module";

/// Prefix of a [`UnimodalClassifier`]'s own linear head.
pub const UNIMODAL_HEAD_PREFIX: &str = "head";

/// Every named tensor of a model, for checkpoints ([`crate::state`]).
pub trait ModelState {
    /// Trainable parameters with full names (what the optimizer sees).
    fn named_params(&self) -> Vec<NamedVar>;
    /// Non-trainable state with full names (BatchNorm running statistics).
    fn named_buffers(&self) -> Vec<NamedVar>;
    /// Parameters then buffers.
    fn named_state(&self) -> Vec<NamedVar> {
        let mut v = self.named_params();
        v.extend(self.named_buffers());
        v
    }
}

/// M encoders and one fusion head.
pub struct FusionModel {
    names: Vec<String>,
    encoders: Vec<Box<dyn Encoder>>,
    head: Box<dyn FusionHead>,
}

impl FusionModel {
    /// `encoders` in modality order, each with its modality name. Checks M ≥ 2, distinct names,
    /// and that the head's input sizes are the encoders' output sizes.
    pub fn new(encoders: Vec<(String, Box<dyn Encoder>)>, head: Box<dyn FusionHead>) -> crate::Result<Self> {
        if encoders.len() < 2 {
            return config_err(format!("a FusionModel needs at least 2 modalities, got {}", encoders.len()));
        }
        let (names, encoders): (Vec<String>, Vec<Box<dyn Encoder>>) = encoders.into_iter().unzip();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || names[..i].contains(n) {
                return config_err(format!("modality names must be non-empty and distinct, got {names:?}"));
            }
        }
        let dims: Vec<usize> = encoders.iter().map(|e| e.out_dim()).collect();
        if head.input_dims() != dims.as_slice() {
            return config_err(format!(
                "fusion head expects inputs of sizes {:?}, the encoders give {dims:?}",
                head.input_dims()
            ));
        }
        Ok(Self { names, encoders, head })
    }

    pub fn encoder(&self, modality: usize) -> &dyn Encoder {
        self.encoders[modality].as_ref()
    }

    pub fn head(&self) -> &dyn FusionHead {
        self.head.as_ref()
    }

    /// Index of the modality called `name`.
    pub fn modality_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

impl std::fmt::Debug for FusionModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let enc: Vec<String> =
            self.names.iter().zip(&self.encoders).map(|(n, e)| format!("{n}: {}", e.describe())).collect();
        f.debug_struct("FusionModel").field("encoders", &enc).field("head", &self.head.describe()).finish()
    }
}

impl MultimodalModel for FusionModel {
    fn num_modalities(&self) -> usize {
        self.encoders.len()
    }

    fn modality_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn encode(&self, modality: usize, x: &Tensor, train: bool) -> Result<Tensor> {
        match self.encoders.get(modality) {
            Some(e) => e.forward_t(x, train),
            None => bail!("modality {modality} out of range (the model has {})", self.encoders.len()),
        }
    }

    fn fuse(&self, z: &[Tensor], train: bool) -> Result<Tensor> {
        self.head.forward_t(z, train)
    }

    fn encoder_params(&self, modality: usize) -> Vec<NamedVar> {
        prefixed(&encoder_prefix(&self.names[modality]), self.encoders[modality].params())
    }

    fn state_vars(&self) -> Vec<NamedVar> {
        self.named_state()
    }

    fn head_params(&self) -> Vec<NamedVar> {
        prefixed(FUSION_PREFIX, self.head.params())
    }

    fn linear_head_block(&self, modality: usize) -> Option<Tensor> {
        self.head.linear_block(modality)
    }

    fn linear_head_bias(&self, modality: usize) -> Option<Tensor> {
        self.head.linear_bias(modality)
    }
}

impl ModelState for FusionModel {
    fn named_params(&self) -> Vec<NamedVar> {
        let mut v: Vec<NamedVar> = (0..self.encoders.len()).flat_map(|m| self.encoder_params(m)).collect();
        v.extend(self.head_params());
        v
    }

    fn named_buffers(&self) -> Vec<NamedVar> {
        let mut v: Vec<NamedVar> = self
            .names
            .iter()
            .zip(&self.encoders)
            .flat_map(|(n, e)| prefixed(&encoder_prefix(n), e.buffers()))
            .collect();
        v.extend(prefixed(FUSION_PREFIX, self.head.buffers()));
        v
    }
}

/// One encoder and its own linear classifier (`head = Linear(d, K)`, xavier-normal, bias 0).
///
/// Implements [`MultimodalModel`] with one modality: `encode(0, x)` = φ(x), `fuse([z])` = head(z);
/// use it with plain routing only (modality dropout needs M ≥ 2).
pub struct UnimodalClassifier {
    name: String,
    encoder: Box<dyn Encoder>,
    head: Linear,
}

impl UnimodalClassifier {
    /// `ctx` is the model-level context; the head draws from `ctx.sub("head")`.
    pub fn new(
        ctx: &InitCtx,
        name: impl Into<String>,
        encoder: Box<dyn Encoder>,
        num_classes: usize,
    ) -> crate::Result<Self> {
        let name = name.into();
        if name.is_empty() || num_classes == 0 {
            return config_err("UnimodalClassifier needs a modality name and num_classes > 0");
        }
        let head = Linear::new(&ctx.sub(UNIMODAL_HEAD_PREFIX), "", encoder.out_dim(), num_classes)?;
        Ok(Self { name, encoder, head })
    }

    pub fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }

    pub fn head(&self) -> &Linear {
        &self.head
    }
}

impl std::fmt::Debug for UnimodalClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnimodalClassifier")
            .field("modality", &self.name)
            .field("encoder", &self.encoder.describe())
            .field("classes", &self.head.out_dim())
            .finish()
    }
}

impl MultimodalModel for UnimodalClassifier {
    fn num_modalities(&self) -> usize {
        1
    }

    fn modality_names(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn encode(&self, modality: usize, x: &Tensor, train: bool) -> Result<Tensor> {
        if modality != 0 {
            bail!("a UnimodalClassifier has one modality, got index {modality}")
        }
        self.encoder.forward_t(x, train)
    }

    fn fuse(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        if z.len() != 1 {
            bail!("a UnimodalClassifier fuses one representation, got {}", z.len())
        }
        self.head.forward(&z[0])
    }

    fn encoder_params(&self, modality: usize) -> Vec<NamedVar> {
        if modality != 0 {
            return Vec::new();
        }
        prefixed(&encoder_prefix(&self.name), self.encoder.params())
    }

    fn state_vars(&self) -> Vec<NamedVar> {
        self.named_state()
    }

    fn head_params(&self) -> Vec<NamedVar> {
        prefixed(UNIMODAL_HEAD_PREFIX, self.head.params())
    }

    fn linear_head_block(&self, modality: usize) -> Option<Tensor> {
        (modality == 0).then(|| self.head.weight().as_tensor().clone())
    }

    fn linear_head_bias(&self, modality: usize) -> Option<Tensor> {
        (modality == 0).then(|| self.head.bias().as_tensor().clone())
    }
}

impl ModelState for UnimodalClassifier {
    fn named_params(&self) -> Vec<NamedVar> {
        let mut v = self.encoder_params(0);
        v.extend(self.head_params());
        v
    }

    fn named_buffers(&self) -> Vec<NamedVar> {
        prefixed(&encoder_prefix(&self.name), self.encoder.buffers())
    }
}

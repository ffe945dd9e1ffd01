//! MMTM dense fusion (Joze et al., CVPR 2020), the paper's Table 2 (left): ResNet-18 trunks, one per
//! modality, exchanging information through multimodal transfer modules after layer2, layer3 and
//! layer4, then global pooling, concatenation and a linear head.
//!
//! An MMTM block on the maps A_1 … A_M (B, C_m, h_m, w_m): squeeze S = [mean_hw A_1, …, mean_hw A_M]
//! (B, Σ C_m) → Z = ReLU(W_s S + b_s) (hidden = 2·ΣC_m / ratio, ratio 2 as in the GDL repo's
//! `mmtm_net.py`) → per modality E_m = σ(W_m Z + b_m) (B, C_m) → Ã_m = A_m ⊙ E_m (channel-wise), as the
//! official MMTM code (`mmtm.py:40-80`: plain σ, no factor 2; PyTorch's default Linear
//! initialisation, since its `init_weights` only prints). The trunks are this crate's ResNet-18
//! (7×7 stem, as the Table-1 models), not the GDL file's 3×3/2 stem variant.
//!
//! The split DGL needs (`dgl_core::MultimodalModel`): the encoders φ_m are stem..layer2 of each trunk
//! (the official file's `special_bone_*`), so z_m is the layer2 map; h is everything after it: the
//! three MMTM blocks (`GroupKind::Fusion { after_stage }`: stages 2, 3, 4), layer3 and layer4 of
//! every trunk and the linear head. The modality-dropout forward zeroes the other modalities' layer2
//! maps, which then still pass through the MMTM blocks and their trunks' later stages.
//!
//! Deviation from the GDL repo's file (official-code.md §2.3): its `depth_0/depth_1` reuse the RGB
//! trunk's layer3/layer4 objects, so the two modalities share those weights — a bug; here every
//! trunk has its own. Only one frame per clip (the paper's setting for MMTM).

use candle_core::{bail, Result, Tensor};
use dgl_core::{MultimodalModel, NamedVar};

use crate::encoder::{AudioEncoder, StagedEncoder, VisualEncoder};
use crate::init::InitCtx;
use crate::layers::{prefixed, Linear};
use crate::multimodal::{encoder_prefix, ModelState};
use crate::resnet::ResNet;

/// The last stage of the encoders (layer2); MMTM blocks follow it and every later stage.
pub const SPLIT_STAGE: usize = 2;

/// One multimodal transfer module.
#[derive(Clone, Debug)]
pub struct Mmtm {
    squeeze: Linear,
    excite: Vec<Linear>,
}

impl Mmtm {
    /// `channels[m]` = C_m; hidden width 2·ΣC_m / `ratio`.
    pub fn new(ctx: &InitCtx, channels: &[usize], ratio: usize) -> crate::Result<Self> {
        let total: usize = channels.iter().sum();
        let hidden = (2 * total / ratio.max(1)).max(1);
        // The official `init_weights` only prints: PyTorch's default Linear initialisation.
        let squeeze = Linear::torch_default(ctx, "fc_squeeze", total, hidden)?;
        let excite = channels
            .iter()
            .enumerate()
            .map(|(m, &c)| Linear::torch_default(ctx, &format!("fc_{m}"), hidden, c))
            .collect::<crate::Result<_>>()?;
        Ok(Self { squeeze, excite })
    }

    /// (Ã_1, …, Ã_M) from the maps (A_1, …, A_M).
    pub fn forward(&self, maps: &[Tensor]) -> Result<Vec<Tensor>> {
        if maps.len() != self.excite.len() {
            bail!("MMTM block for {} modalities got {} maps", self.excite.len(), maps.len())
        }
        let s = maps.iter().map(|a| a.mean(3)?.mean(2)).collect::<Result<Vec<_>>>()?;
        let z = self.squeeze.forward(&Tensor::cat(&s, 1)?)?.relu()?;
        maps.iter()
            .zip(&self.excite)
            .map(|(a, e)| {
                let (b, c) = (a.dim(0)?, a.dim(1)?);
                let gate = candle_nn::ops::sigmoid(&e.forward(&z)?)?.reshape((b, c, 1, 1))?;
                a.broadcast_mul(&gate)
            })
            .collect()
    }

    pub fn params(&self) -> Vec<NamedVar> {
        let mut v = prefixed("fc_squeeze", self.squeeze.params());
        for (m, e) in self.excite.iter().enumerate() {
            v.extend(prefixed(&format!("fc_{m}"), e.params()));
        }
        v
    }
}

/// A modality's ResNet trunk (spectrogram or frames; ResNet-18 or -34, `model.resnet`).
#[derive(Debug)]
pub enum Trunk {
    Audio(AudioEncoder),
    Visual(VisualEncoder),
}

impl Trunk {
    fn staged(&self) -> &dyn StagedEncoder {
        match self {
            Trunk::Audio(e) => e,
            Trunk::Visual(e) => e,
        }
    }
}

/// ResNet trunks with MMTM blocks after layer2, layer3 and layer4 (see the module doc).
#[derive(Debug)]
pub struct MmtmModel {
    names: Vec<String>,
    trunks: Vec<Trunk>,
    /// (stage it follows, block), stages 2, 3, 4.
    blocks: Vec<(usize, Mmtm)>,
    head: Linear,
}

impl MmtmModel {
    /// `trunks` named by modality (`audio`, `visual`, …), all of one base width; parameters are
    /// drawn from `ctx` (trunk m from `<name>_net`, block k from `mmtm<k>`, the head from `fc`).
    pub fn new(ctx: &InitCtx, trunks: Vec<(String, Trunk)>, num_classes: usize) -> crate::Result<Self> {
        if trunks.len() < 2 {
            return crate::error::config_err("MMTM fuses 2 or more modalities");
        }
        let (names, trunks): (Vec<String>, Vec<Trunk>) = trunks.into_iter().unzip();
        let mut blocks = Vec::new();
        for stage in SPLIT_STAGE..ResNet::STAGES {
            let channels: Vec<usize> = trunks.iter().map(|t| t.staged().stage_channels(stage)).collect();
            blocks.push((stage, Mmtm::new(&ctx.sub(&format!("mmtm{stage}")), &channels, 2)?));
        }
        let dim: usize = trunks.iter().map(|t| t.staged().out_dim()).sum();
        let head = Linear::new(&ctx.sub("fc"), "", dim, num_classes)?;
        Ok(Self { names, trunks, blocks, head })
    }

    /// The model of two trunks: `audio` (1-channel spectrogram) and `visual` (RGB frames).
    pub fn audio_visual(ctx: &InitCtx, base_width: usize, num_classes: usize) -> crate::Result<Self> {
        let audio = AudioEncoder::new(&ctx.sub(&encoder_prefix("audio")), 1, base_width)?;
        let visual = VisualEncoder::new(&ctx.sub(&encoder_prefix("visual")), 3, base_width)?;
        Self::new(
            ctx,
            vec![("audio".into(), Trunk::Audio(audio)), ("visual".into(), Trunk::Visual(visual))],
            num_classes,
        )
    }

    fn trunk_params(&self, m: usize, stages: std::ops::Range<usize>) -> Vec<NamedVar> {
        let t = self.trunks[m].staged();
        prefixed(&encoder_prefix(&self.names[m]), stages.flat_map(|s| t.stage_params(s)).collect())
    }
}

impl MultimodalModel for MmtmModel {
    fn num_modalities(&self) -> usize {
        self.trunks.len()
    }

    fn modality_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// z_m: the layer2 map of modality m's trunk.
    fn encode(&self, m: usize, x: &Tensor, train: bool) -> Result<Tensor> {
        let t = self.trunks[m].staged();
        let (mut h, frames) = t.stage_input(x)?;
        if frames != 1 {
            bail!("the MMTM model takes one frame per clip (the paper's setting), got {frames}")
        }
        for stage in 0..=SPLIT_STAGE {
            h = t.forward_stage(stage, &h, train)?;
        }
        Ok(h)
    }

    /// MMTM after layer2, layer3 (after each trunk's layer3), layer4; pool; concat; head.
    fn fuse(&self, z: &[Tensor], train: bool) -> Result<Tensor> {
        let mut maps = z.to_vec();
        for (stage, block) in &self.blocks {
            if *stage > SPLIT_STAGE {
                for (m, h) in maps.iter_mut().enumerate() {
                    *h = self.trunks[m].staged().forward_stage(*stage, h, train)?;
                }
            }
            maps = block.forward(&maps)?;
        }
        let pooled =
            maps.iter().enumerate().map(|(m, h)| self.trunks[m].staged().pool(h, 1)).collect::<Result<Vec<_>>>()?;
        self.head.forward(&Tensor::cat(&pooled, 1)?)
    }

    /// Stem, layer1 and layer2 of trunk m.
    fn encoder_params(&self, m: usize) -> Vec<NamedVar> {
        self.trunk_params(m, 0..SPLIT_STAGE + 1)
    }

    fn fusion_params(&self) -> Vec<(usize, Vec<NamedVar>)> {
        self.blocks.iter().map(|(s, b)| (*s, prefixed(&format!("mmtm{s}"), b.params()))).collect()
    }

    /// layer3 and layer4 of every trunk, and the linear head.
    fn head_params(&self) -> Vec<NamedVar> {
        let mut v: Vec<NamedVar> =
            (0..self.trunks.len()).flat_map(|m| self.trunk_params(m, SPLIT_STAGE + 1..ResNet::STAGES)).collect();
        v.extend(prefixed("fc", self.head.params()));
        v
    }

    /// Every parameter and every trunk's BatchNorm running statistics ([`ModelState`]).
    fn state_vars(&self) -> Vec<NamedVar> {
        self.named_state()
    }
}

impl ModelState for MmtmModel {
    fn named_params(&self) -> Vec<NamedVar> {
        self.param_groups().into_iter().flat_map(|g| g.params).collect()
    }

    fn named_buffers(&self) -> Vec<NamedVar> {
        let buffers = |(m, t): (usize, &Trunk)| prefixed(&encoder_prefix(&self.names[m]), t.staged().buffers());
        self.trunks.iter().enumerate().flat_map(buffers).collect()
    }
}

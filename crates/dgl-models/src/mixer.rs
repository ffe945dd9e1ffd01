//! MLP-Mixer fusion over per-modality sequences (the paper's Table 2, right: audio + visual + text
//! on MOSI with "MLP-Mixer" fusion, its reference [25] = CubeMLP, Sun et al. 2022).
//!
//! Input of modality m: a (T_m, D_m) sequence of pre-extracted features (MOSI: BERT 768 / COVAREP
//! 5 / FACET 20 per step; unaligned lengths differ per modality).
//!
//! * Encoder φ_m ([`SequenceEncoder`], `<name>_net.*`): the sequence is resampled to `seq_len` = L
//!   steps by adaptive average pooling along time (PyTorch `adaptive_avg_pool1d` windows), then a
//!   per-step MLP maps D_m to the common width d: [Linear → ReLU] per hidden size, then a Linear to d
//!   (CubeMLP's text path is one bias-free Linear 768 → d; its audio/visual paths are biGRUs — this
//!   crate has no recurrent layers, and the sequence axis is mixed in h instead). z_m is (B, L, d).
//! * h (`mixer.*`, `fc.*`): X = stack(z_1, …, z_M) ∈ R^{B×L×M×d}, then CubeMLP `MLPsBlock`s
//!   (`MLPProcess.py:25-122`, the default post-LayerNorm form `forward_ln_last`): along the sequence
//!   axis, then the modality axis, then the channel axis, each x ← LN(MLP(x) + R(x)) with
//!   MLP = Linear → GELU → Linear (hidden = input size), R = identity, or a bias-free Linear when the
//!   size changes (`res_project`), LN = LayerNorm(eps 1e-6) over that axis. Block k maps
//!   (L_k, M, d_k) → (L_{k+1}, M, d_{k+1}) as `blocks[k]` says. Then the mean over the sequence,
//!   the M·d_last values concatenated, and a linear head (CubeMLP `Model.py:68-79`: mean over L,
//!   concat over K, Linear).
//!
//! The DGL split (../shared/reference/tables-2-5.md §2: "encoders = 3 extractors; fusion =
//! MLPEncoder + classifier"): the encoders are φ_m above, everything else is h (one
//! `GroupKind::Head` group: the mixer is a late fusion module over the z_m sequences). The
//! modality-dropout forward h(0, …, z_m, …, 0) zeroes the other modalities' slices of X.
//!
//! Deviations from CubeMLP, all deliberate: no dropout (runs are deterministic; CubeMLP drops
//! 0.3-0.6); linear layers with bias and PyTorch's default initialisation; no GRUs (above); with a
//! single modality (the unimodal-only rows) the modality-axis mixer is left out, since a LayerNorm
//! over an axis of size 1 outputs its bias whatever the input.

use candle_core::{bail, Result, Tensor, Var};
use dgl_core::{MultimodalModel, NamedVar};
use serde::{Deserialize, Serialize};

use crate::error::config_err;
use crate::init::{InitCtx, InitKind};
use crate::layers::{prefixed, LayerNorm, Linear};
use crate::limits;
use crate::multimodal::{encoder_prefix, ModelState};
use crate::ops::gelu;

/// Parameter-name prefix of the mixer blocks (CubeMLP's `MLPEncoder`).
pub const MIXER_PREFIX: &str = "mixer";

/// The size a mixer block maps to: sequence length and channels (the modality axis keeps M).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixerStage {
    pub seq_len: usize,
    pub channels: usize,
}

/// Sizes of the MLP-Mixer model (`model.mixer`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixerOptions {
    /// L, the common sequence length every modality is resampled to (MMSA's MOSI files: 50).
    pub seq_len: usize,
    /// d, the common width of the encoders' outputs (CubeMLP: 128).
    pub width: usize,
    /// Output size of each mixer block, in order (CubeMLP's MOSI run maps [100, 3, 128] →
    /// [50, 3, 128] → [10, 3, 32]; here, from L = 50: [25, 128] then [5, 32]).
    pub blocks: Vec<MixerStage>,
}

impl Default for MixerOptions {
    fn default() -> Self {
        Self {
            seq_len: 50,
            width: 128,
            blocks: vec![MixerStage { seq_len: 25, channels: 128 }, MixerStage { seq_len: 5, channels: 32 }],
        }
    }
}

impl MixerOptions {
    /// Every size positive and within [`limits::HIDDEN_SIZE`]; errors name the key.
    pub fn check(&self) -> crate::Result<()> {
        let mut sizes =
            vec![("model.mixer.seq_len".to_string(), self.seq_len), ("model.mixer.width".into(), self.width)];
        for (k, s) in self.blocks.iter().enumerate() {
            sizes.push((format!("model.mixer.blocks[{k}].seq_len"), s.seq_len));
            sizes.push((format!("model.mixer.blocks[{k}].channels"), s.channels));
        }
        for (key, v) in sizes {
            if v == 0 {
                return config_err(format!("{key} must be >= 1"));
            }
            limits::HIDDEN_SIZE.check_key(&key, v as u64)?;
        }
        Ok(())
    }

    /// Trainable parameters of the whole model for `modalities` = (D_m, hidden sizes) and K
    /// classes, without building it.
    pub fn param_count(&self, modalities: &[(usize, Vec<usize>)], num_classes: usize) -> u128 {
        let lin = |i: usize, o: usize| (i as u128 + 1) * o as u128;
        let mut n = 0;
        for (d_in, hidden) in modalities {
            let mut d = *d_in;
            for &h in hidden.iter().chain([self.width].iter()) {
                n += lin(d, h);
                d = h;
            }
        }
        let m = modalities.len();
        let axis =
            |i: usize, o: usize| lin(i, i) + lin(i, o) + 2 * o as u128 + if i == o { 0 } else { (i * o) as u128 };
        let (mut l, mut d) = (self.seq_len, self.width);
        for s in &self.blocks {
            n += axis(l, s.seq_len) + axis(d, s.channels);
            if m > 1 {
                n += axis(m, m);
            }
            (l, d) = (s.seq_len, s.channels);
        }
        n + lin(m * d, num_classes)
    }

    /// The width of the last block's channels (d_last).
    fn out_channels(&self) -> usize {
        self.blocks.last().map_or(self.width, |s| s.channels)
    }
}

/// The (L, T) matrix of adaptive average pooling from T to L steps: row i averages steps
/// ⌊iT/L⌋ … ⌈(i+1)T/L⌉ − 1 (PyTorch `adaptive_avg_pool1d`).
pub fn adaptive_pool_matrix(t: usize, l: usize) -> Vec<f64> {
    let mut p = vec![0.0; l * t];
    for i in 0..l {
        let (start, end) = (i * t / l, ((i + 1) * t).div_ceil(l));
        for j in start..end {
            p[i * t + j] = 1.0 / (end - start) as f64;
        }
    }
    p
}

/// φ_m: (B, T, D) → adaptive average pool to (B, L, D) → per-step MLP → (B, L, d).
#[derive(Clone, Debug)]
pub struct SequenceEncoder {
    in_dim: usize,
    seq_len: usize,
    layers: Vec<Linear>,
}

impl SequenceEncoder {
    /// Layers `net.{2i}` (the `nn.Sequential` index): one per hidden size, then the one to `width`.
    pub fn new(ctx: &InitCtx, in_dim: usize, hidden: &[usize], seq_len: usize, width: usize) -> crate::Result<Self> {
        if in_dim == 0 || seq_len == 0 || width == 0 || hidden.contains(&0) {
            return config_err(format!(
                "sequence encoder needs positive sizes, got in {in_dim}, hidden {hidden:?}, seq_len {seq_len}, width {width}"
            ));
        }
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut d = in_dim;
        for (i, &h) in hidden.iter().chain([width].iter()).enumerate() {
            layers.push(Linear::torch_default(ctx, &format!("net.{}", 2 * i), d, h)?);
            d = h;
        }
        Ok(Self { in_dim, seq_len, layers })
    }

    /// (B, T, D) → (B, L, d); a (B, D) batch is read as T = 1.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.rank() == 2 { &x.unsqueeze(1)? } else { x };
        if x.rank() != 3 || x.dim(2)? != self.in_dim || x.dim(1)? == 0 {
            bail!("the sequence encoder expects (B, T, {}) with T >= 1, got {:?}", self.in_dim, x.shape())
        }
        let t = x.dim(1)?;
        let pool = Tensor::from_vec(adaptive_pool_matrix(t, self.seq_len), (self.seq_len, t), x.device())?
            .to_dtype(x.dtype())?;
        let mut y = pool.broadcast_matmul(x)?;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            y = layer.forward(&y)?;
            if i < last {
                y = y.relu()?;
            }
        }
        Ok(y)
    }

    pub fn out_dim(&self) -> usize {
        self.layers.last().map_or(self.in_dim, |l| l.out_dim())
    }

    pub fn params(&self) -> Vec<NamedVar> {
        self.layers.iter().enumerate().flat_map(|(i, l)| prefixed(&format!("net.{}", 2 * i), l.params())).collect()
    }
}

/// One axis of a mixer block: x ← LN(MLP(x) + R(x)) along the last dim, n_in → n_out.
#[derive(Clone, Debug)]
struct AxisMixer {
    fc1: Linear,
    fc2: Linear,
    ln: LayerNorm,
    /// Bias-free residual projection (n_out, n_in) when the size changes.
    projection: Option<Var>,
}

impl AxisMixer {
    /// `axis` is `l`, `k` or `d` (CubeMLP's `mlp_l`, `ln_l`, `res_projection_l`, …).
    fn new(ctx: &InitCtx, axis: &str, n_in: usize, n_out: usize) -> crate::Result<Self> {
        let projection = if n_in == n_out {
            None
        } else {
            let kind = InitKind::TorchLinearDefault { fan_in: n_in };
            Some(ctx.var(&format!("res_projection_{axis}.weight"), &[n_out, n_in], kind)?)
        };
        Ok(Self {
            fc1: Linear::torch_default(ctx, &format!("mlp_{axis}.fc1"), n_in, n_in)?,
            fc2: Linear::torch_default(ctx, &format!("mlp_{axis}.fc2"), n_in, n_out)?,
            ln: LayerNorm::new(ctx, &format!("ln_{axis}"), n_out, 1e-6)?,
            projection,
        })
    }

    fn forward_last(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        let residual = match &self.projection {
            Some(w) => x.broadcast_matmul(&w.as_tensor().t()?)?,
            None => x.clone(),
        };
        let y = self.fc2.forward(&gelu(&self.fc1.forward(&x)?)?)?;
        self.ln.forward(&(y + residual)?)
    }

    /// The mixer applied along `dim` of a rank-4 tensor.
    fn forward_along(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        if dim == 3 {
            return self.forward_last(x);
        }
        self.forward_last(&x.transpose(dim, 3)?)?.transpose(dim, 3)
    }

    fn params(&self, axis: &str) -> Vec<NamedVar> {
        let mut v = prefixed(&format!("mlp_{axis}.fc1"), self.fc1.params());
        v.extend(prefixed(&format!("mlp_{axis}.fc2"), self.fc2.params()));
        v.extend(prefixed(&format!("ln_{axis}"), self.ln.params()));
        if let Some(w) = &self.projection {
            v.push(NamedVar::new(format!("res_projection_{axis}.weight"), w.clone()));
        }
        v
    }
}

/// CubeMLP's `MLPsBlock` (post-LayerNorm): sequence, modality, channel mixing in turn.
#[derive(Clone, Debug)]
struct MixerBlock {
    sequence: AxisMixer,
    /// `None` with one modality (see the module doc).
    modality: Option<AxisMixer>,
    channel: AxisMixer,
}

impl MixerBlock {
    fn new(ctx: &InitCtx, (l_in, m, d_in): (usize, usize, usize), out: MixerStage) -> crate::Result<Self> {
        Ok(Self {
            sequence: AxisMixer::new(ctx, "l", l_in, out.seq_len)?,
            modality: if m > 1 { Some(AxisMixer::new(ctx, "k", m, m)?) } else { None },
            channel: AxisMixer::new(ctx, "d", d_in, out.channels)?,
        })
    }

    /// (B, L, M, d) → (B, L', M, d').
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.sequence.forward_along(x, 1)?;
        if let Some(k) = &self.modality {
            x = k.forward_along(&x, 2)?;
        }
        self.channel.forward_along(&x, 3)
    }

    fn params(&self) -> Vec<NamedVar> {
        let mut v = self.sequence.params("l");
        if let Some(k) = &self.modality {
            v.extend(k.params("k"));
        }
        v.extend(self.channel.params("d"));
        v
    }
}

/// Per-modality sequence encoders, MLP-Mixer fusion, mean over the sequence, linear head (see the
/// module doc).
#[derive(Clone, Debug)]
pub struct MixerModel {
    names: Vec<String>,
    encoders: Vec<SequenceEncoder>,
    seq_len: usize,
    width: usize,
    blocks: Vec<MixerBlock>,
    head: Linear,
}

impl MixerModel {
    /// `modalities` = (name, D_m, hidden sizes of its encoder); parameters are drawn from `ctx`
    /// (encoder m from `<name>_net`, block k from `mixer.layers_stack.k`, the head from `fc`).
    pub fn new(
        ctx: &InitCtx,
        modalities: &[(String, usize, Vec<usize>)],
        opts: &MixerOptions,
        num_classes: usize,
    ) -> crate::Result<Self> {
        opts.check()?;
        if modalities.is_empty() || num_classes == 0 {
            return config_err("the mixer model needs at least one modality and one class");
        }
        let mut names = Vec::with_capacity(modalities.len());
        let mut encoders = Vec::with_capacity(modalities.len());
        for (name, d_in, hidden) in modalities {
            let enc = ctx.sub(&encoder_prefix(name));
            encoders.push(SequenceEncoder::new(&enc, *d_in, hidden, opts.seq_len, opts.width)?);
            names.push(name.clone());
        }
        let m = modalities.len();
        let mut blocks = Vec::with_capacity(opts.blocks.len());
        let (mut l, mut d) = (opts.seq_len, opts.width);
        for (k, &stage) in opts.blocks.iter().enumerate() {
            let block_ctx = ctx.sub(&format!("{MIXER_PREFIX}.layers_stack.{k}"));
            blocks.push(MixerBlock::new(&block_ctx, (l, m, d), stage)?);
            (l, d) = (stage.seq_len, stage.channels);
        }
        let head = Linear::torch_default(&ctx.sub("fc"), "", m * opts.out_channels(), num_classes)?;
        Ok(Self { names, encoders, seq_len: opts.seq_len, width: opts.width, blocks, head })
    }
}

impl MultimodalModel for MixerModel {
    fn num_modalities(&self) -> usize {
        self.encoders.len()
    }

    fn modality_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// z_m = φ_m(x_m), (B, L, d).
    fn encode(&self, m: usize, x: &Tensor, _train: bool) -> Result<Tensor> {
        match self.encoders.get(m) {
            Some(e) => e.forward(x),
            None => bail!("modality {m} out of range (the model has {})", self.encoders.len()),
        }
    }

    /// Stack, mixer blocks, mean over the sequence, concat over modalities, head.
    fn fuse(&self, z: &[Tensor], _train: bool) -> Result<Tensor> {
        if z.len() != self.encoders.len() {
            bail!("the mixer fuses {} sequences, got {}", self.encoders.len(), z.len())
        }
        let b = z[0].dim(0)?;
        for (m, t) in z.iter().enumerate() {
            if t.dims() != [b, self.seq_len, self.width] {
                bail!("mixer: z_{m} has shape {:?}, expected ({b}, {}, {})", t.shape(), self.seq_len, self.width)
            }
        }
        let mut x = Tensor::stack(z, 2)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let pooled = x.mean(1)?;
        let (b, m, d) = pooled.dims3()?;
        self.head.forward(&pooled.reshape((b, m * d))?)
    }

    fn encoder_params(&self, m: usize) -> Vec<NamedVar> {
        prefixed(&encoder_prefix(&self.names[m]), self.encoders[m].params())
    }

    /// The mixer blocks and the head.
    fn head_params(&self) -> Vec<NamedVar> {
        let mut v: Vec<NamedVar> = self
            .blocks
            .iter()
            .enumerate()
            .flat_map(|(k, b)| prefixed(&format!("{MIXER_PREFIX}.layers_stack.{k}"), b.params()))
            .collect();
        v.extend(prefixed("fc", self.head.params()));
        v
    }
}

impl ModelState for MixerModel {
    fn named_params(&self) -> Vec<NamedVar> {
        self.param_groups().into_iter().flat_map(|g| g.params).collect()
    }

    fn named_buffers(&self) -> Vec<NamedVar> {
        Vec::new()
    }
}

/// Shapes accepted for a modality of the mixer model: (T, D), or (D,) read as T = 1.
pub fn sequence_dims(shape: &[usize]) -> Option<(usize, usize)> {
    match *shape {
        [t, d] if t > 0 && d > 0 => Some((t, d)),
        [d] if d > 0 => Some((1, d)),
        _ => None,
    }
}

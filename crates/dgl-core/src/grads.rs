//! Detached, group-aware parameter gradients.
//!
//! candle 0.11.1's `backward()` returns each `Var`'s gradient still attached to the step's autograd
//! graph (huggingface/candle#1241): anything that keeps it across steps keeps every step's
//! activations alive. Every gradient entering a [`ParamGrads`] is detached, so optimizer state,
//! statistics and diagnostics built from it are safe to keep.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::model::{GroupKind, ParamGroup};
use crate::Result;

/// The gradient of one parameter.
#[derive(Clone, Debug)]
pub struct GradEntry {
    pub group: GroupKind,
    pub name: String,
    pub var: Var,
    pub grad: Tensor,
}

/// Gradients of named parameters, detached from the graph. A parameter with no gradient is absent
/// (like PyTorch's `grad is None`): the optimizer skips it entirely.
#[derive(Clone, Debug, Default)]
pub struct ParamGrads {
    entries: Vec<GradEntry>,
}

impl ParamGrads {
    /// Collects (detached) the gradients of the parameters of `groups` for which `keep(kind)` holds.
    pub fn from_store(store: &GradStore, groups: &[ParamGroup], keep: impl Fn(GroupKind) -> bool) -> Self {
        let mut entries = Vec::new();
        for g in groups.iter().filter(|g| keep(g.kind)) {
            for p in &g.params {
                if let Some(grad) = store.get(p.var.as_tensor()) {
                    entries.push(GradEntry {
                        group: g.kind,
                        name: p.name.clone(),
                        var: p.var.clone(),
                        grad: grad.detach(),
                    });
                }
            }
        }
        Self { entries }
    }

    pub fn entries(&self) -> &[GradEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The gradient of the parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|e| e.name == name).map(|e| &e.grad)
    }

    /// Adds `other` into `self` (summing gradients of the same parameter).
    pub fn merge(&mut self, other: ParamGrads) -> Result<()> {
        for e in other.entries {
            match self.entries.iter_mut().find(|x| x.var.id() == e.var.id()) {
                Some(x) => x.grad = (&x.grad + &e.grad)?,
                None => self.entries.push(e),
            }
        }
        Ok(())
    }

    /// Keeps only the entries of groups for which `keep` holds.
    pub fn retain(&mut self, keep: impl Fn(GroupKind) -> bool) {
        self.entries.retain(|e| keep(e.group));
    }

    /// Replaces each gradient by `f(entry)`.
    pub fn map(&mut self, mut f: impl FnMut(&GradEntry) -> candle_core::Result<Tensor>) -> Result<()> {
        for e in &mut self.entries {
            e.grad = f(e)?.detach();
        }
        Ok(())
    }

    /// Multiplies the gradients of one group by `factor`.
    pub fn scale_group(&mut self, group: GroupKind, factor: f64) -> Result<()> {
        for e in self.entries.iter_mut().filter(|e| e.group == group) {
            e.grad = (&e.grad * factor)?;
        }
        Ok(())
    }

    /// ‖g‖₂ over all entries (as `torch.nn.utils.clip_grad_norm_` computes it). Each tensor's sum
    /// of squares is taken in its own dtype and, should that overflow (f32 from elements of about
    /// 1.8e19 on), again in f64: finite gradients always give a finite norm.
    pub fn global_norm(&self) -> Result<f64> {
        let mut total = 0f64;
        for e in &self.entries {
            total += finite_or_f64(&e.grad, |t| t.sqr()?.sum_all())?;
        }
        Ok(total.sqrt())
    }

    /// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: if the global L2 norm exceeds `max_norm`,
    /// every gradient is multiplied by `max_norm / (norm + 1e-6)`. Returns the norm before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.global_norm()?;
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for e in &mut self.entries {
                e.grad = (&e.grad * coef)?;
            }
        }
        Ok(norm)
    }

    /// Σ over the parameter tensors of `group` of mean |g| — the statistic the official code logs
    /// for Fig. 1(c)/3(b) (`main_dgl.py:132-152`).
    pub fn magnitude(&self, group: GroupKind) -> Result<f64> {
        let mut total = 0f64;
        for e in self.entries.iter().filter(|e| e.group == group) {
            total += finite_or_f64(&e.grad, |t| t.abs()?.mean_all())?;
        }
        Ok(total)
    }

    /// Whether every gradient is finite; otherwise the name of the first bad parameter. Decided by
    /// the elements ([`has_non_finite`]), not by a sum: finite elements whose f32 sum overflows (two
    /// of 3e38) are a healthy gradient. A finite sum proves every element finite (a NaN or ±∞
    /// element makes the sum non-finite), so the element test runs only on a tensor whose sum is
    /// not finite: one reduction per tensor on the every-step path, as before.
    pub fn first_non_finite(&self) -> Result<Option<String>> {
        for e in &self.entries {
            let sum = e.grad.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            if !sum.is_finite() && has_non_finite(&e.grad)? {
                return Ok(Some(e.name.clone()));
            }
        }
        Ok(None)
    }
}

/// Whether any element of `t` is NaN or ±∞, tested element by element on the tensor's device
/// (x ≠ x for NaN, |x| = ∞ for the infinities); one byte comes back to the host.
pub fn has_non_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() || t.elem_count() == 0 {
        return Ok(false);
    }
    let nan = t.ne(t)?;
    let inf = t.abs()?.eq(f64::INFINITY)?;
    Ok(nan.maximum(&inf)?.flatten_all()?.max(0)?.to_scalar::<u8>()? != 0)
}

/// The scalar `f(t)` computed in `t`'s dtype, or, when that is not finite although `t` is (an
/// overflowing reduction), computed again on `t` in f64.
fn finite_or_f64(t: &Tensor, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> Result<f64> {
    let v = f(t)?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    if v.is_finite() || t.dtype() == candle_core::DType::F64 || has_non_finite(t)? {
        return Ok(v);
    }
    Ok(f(&t.to_dtype(candle_core::DType::F64)?)?.to_scalar::<f64>()?)
}

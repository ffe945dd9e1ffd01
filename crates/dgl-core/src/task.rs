//! Tasks: what the labels are, the loss the step minimises and the metrics a split is scored by.
//!
//! * [`Classification`]: one class per sample; `torch.nn.CrossEntropyLoss()`; accuracy.
//! * [`Segmentation`]: a class per position (logits `[B, K, H, W]`, labels `[B, H, W]`) with an
//!   ignore value; cross-entropy with optional class weights and `ignore_index`
//!   ([`WeightedCrossEntropy`], PyTorch's semantics); mIoU and pixel accuracy from a confusion
//!   matrix ([`SegmentationMetric`]).
//!
//! The step takes the task's loss ([`crate::StepContext::loss`]); DGL's routing does not depend on
//! the task.

use candle_core::{DType, Result, Tensor, D};

use crate::loss::{CrossEntropy, Loss};

/// What a task's labels are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels {
    /// One class id per sample.
    ClassPerSample,
    /// A class id per position, `ignore` marking positions without a label.
    DenseMap { ignore: Option<u32> },
}

/// Scores accumulated over the batches of a split.
pub trait Metric {
    /// Adds one batch: logits and class-id targets.
    fn update(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()>;
    /// The scores so far, named (`acc`; `miou`, `pixel_acc`).
    fn values(&self) -> Vec<(&'static str, f64)>;
}

/// A training task.
pub trait Task {
    fn labels(&self) -> Labels;
    /// The loss the step minimises.
    fn loss(&self) -> &dyn Loss;
    /// A fresh accumulator of the task's metrics.
    fn metric(&self) -> Box<dyn Metric>;
}

/// Classification: one class per sample, cross-entropy, accuracy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Classification;

impl Task for Classification {
    fn labels(&self) -> Labels {
        Labels::ClassPerSample
    }

    fn loss(&self) -> &dyn Loss {
        &CrossEntropy
    }

    fn metric(&self) -> Box<dyn Metric> {
        Box::new(Accuracy::default())
    }
}

/// Number of argmax predictions (over the last dimension) equal to the targets.
pub fn correct(logits: &Tensor, targets: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred.eq(targets)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as usize)
}

/// (correct argmax predictions, positions counted) of one batch for a task whose labels are
/// `labels`: per sample for classification (argmax over the last dim); per position for dense labels
/// (argmax over dim 1, ignored positions left out of both counts).
pub fn count_correct(labels: Labels, logits: &Tensor, targets: &Tensor) -> Result<(usize, usize)> {
    match labels {
        Labels::ClassPerSample => Ok((correct(logits, targets)?, targets.dim(0)?)),
        Labels::DenseMap { ignore } => {
            let pred = logits.argmax(1)?.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            let y = targets.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            if pred.len() != y.len() {
                candle_core::bail!("{} predicted positions for {} targets", pred.len(), y.len());
            }
            let kept = y.iter().zip(&pred).filter(|(t, _)| Some(**t) != ignore);
            let (hit, n) = kept.fold((0, 0), |(h, n), (t, p)| (h + (t == p) as usize, n + 1));
            Ok((hit, n))
        }
    }
}

/// Accuracy: correct argmax predictions over samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
}

impl Metric for Accuracy {
    fn update(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        self.correct += correct(logits, targets)?;
        self.total += targets.dim(0)?;
        Ok(())
    }

    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("acc", self.correct as f64 / self.total.max(1) as f64)]
    }
}

/// Semantic segmentation: K classes per position, an optional ignore value and class weights.
#[derive(Clone, Debug)]
pub struct Segmentation {
    pub num_classes: usize,
    pub loss: WeightedCrossEntropy,
}

impl Task for Segmentation {
    fn labels(&self) -> Labels {
        Labels::DenseMap { ignore: self.loss.ignore_index }
    }

    fn loss(&self) -> &dyn Loss {
        &self.loss
    }

    fn metric(&self) -> Box<dyn Metric> {
        Box::new(SegmentationMetric::new(self.num_classes, self.loss.ignore_index))
    }
}

/// Cross-entropy with optional per-class weights and an ignored target value, as
/// `torch.nn.CrossEntropyLoss(weight, ignore_index)` with mean reduction:
/// L = Σ_i w_{y_i}·(−log softmax(x_i)\[y_i\]) / Σ_i w_{y_i} over the positions i whose target is not
/// ignored. Logits `[N, K]` or `[B, K, d1, …]` (K on dim 1), targets `[N]` or `[B, d1, …]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightedCrossEntropy {
    /// w_k, one per class; `None` = 1.
    pub class_weights: Option<Vec<f32>>,
    pub ignore_index: Option<u32>,
}

impl Loss for WeightedCrossEntropy {
    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let k = logits.dim(1)?;
        let flat = if logits.rank() == 2 {
            logits.clone()
        } else {
            let mut perm: Vec<usize> = (0..logits.rank()).collect();
            perm.remove(1);
            perm.push(1);
            logits.permute(perm)?.contiguous()?.reshape(((), k))?
        };
        let y = targets.flatten_all()?.to_dtype(DType::U32)?;
        let valid = match self.ignore_index {
            Some(ig) => y.ne(ig)?,
            None => y.ones_like()?.to_dtype(DType::U8)?,
        };
        // Ignored targets point at class 0 for the gather and are weighted 0.
        let safe = valid.where_cond(&y, &y.zeros_like()?)?;
        let dev = logits.device();
        let w_class = match &self.class_weights {
            Some(w) if w.len() == k => Tensor::from_slice(w, k, dev)?.to_dtype(logits.dtype())?,
            Some(w) => candle_core::bail!("{} class weights for {k} classes", w.len()),
            None => Tensor::ones(k, logits.dtype(), dev)?,
        };
        let w = w_class.index_select(&safe, 0)?.mul(&valid.to_dtype(logits.dtype())?)?;
        let logp = candle_nn::ops::log_softmax(&flat, D::Minus1)?.gather(&safe.unsqueeze(1)?, 1)?.squeeze(1)?;
        let num = (logp * &w)?.sum_all()?.neg()?;
        num / w.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?
    }
}

/// mIoU and pixel accuracy from the confusion matrix of argmax predictions (over dim 1) against
/// the targets, ignored positions left out. mIoU averages TP / (TP + FP + FN) over the classes
/// that occur in the targets or the predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationMetric {
    pub num_classes: usize,
    pub ignore: Option<u32>,
    /// `confusion[t·K + p]`: positions of target class t predicted as p.
    pub confusion: Vec<u64>,
}

impl SegmentationMetric {
    pub fn new(num_classes: usize, ignore: Option<u32>) -> Self {
        Self { num_classes, ignore, confusion: vec![0; num_classes * num_classes] }
    }

    /// Positions counted (the ignored ones left out).
    pub fn labelled(&self) -> u64 {
        self.confusion.iter().sum()
    }

    /// TP / (TP + FP + FN) of every class; `None` for a class absent from both the targets and
    /// the predictions (left out of the mean).
    pub fn class_iou(&self) -> Vec<Option<f64>> {
        let k = self.num_classes;
        (0..k)
            .map(|c| {
                let tp = self.confusion[c * k + c];
                let row: u64 = self.confusion[c * k..(c + 1) * k].iter().sum();
                let col: u64 = (0..k).map(|t| self.confusion[t * k + c]).sum();
                let union = row + col - tp;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// TP / (TP + FN) of every class present in the targets (`None` otherwise): the per-class
    /// pixel accuracy whose mean is the "mean accuracy" of segmentation papers.
    pub fn class_accuracy(&self) -> Vec<Option<f64>> {
        let k = self.num_classes;
        (0..k)
            .map(|c| {
                let row: u64 = self.confusion[c * k..(c + 1) * k].iter().sum();
                (row > 0).then(|| self.confusion[c * k + c] as f64 / row as f64)
            })
            .collect()
    }
}

impl Metric for SegmentationMetric {
    fn update(&mut self, logits: &Tensor, targets: &Tensor) -> Result<()> {
        let k = self.num_classes;
        let pred = logits.argmax(1)?.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let y = targets.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        if pred.len() != y.len() {
            candle_core::bail!("{} predicted positions for {} targets", pred.len(), y.len());
        }
        for (&t, &p) in y.iter().zip(&pred) {
            if Some(t) == self.ignore {
                continue;
            }
            if t as usize >= k {
                candle_core::bail!("target class {t} out of range for {k} classes");
            }
            self.confusion[t as usize * k + p as usize] += 1;
        }
        Ok(())
    }

    fn values(&self) -> Vec<(&'static str, f64)> {
        let ious: Vec<f64> = self.class_iou().into_iter().flatten().collect();
        let miou = if ious.is_empty() { 0.0 } else { ious.iter().sum::<f64>() / ious.len() as f64 };
        let k = self.num_classes;
        let tp: u64 = (0..k).map(|c| self.confusion[c * k + c]).sum();
        vec![("miou", miou), ("pixel_acc", tp as f64 / self.labelled().max(1) as f64)]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn count_correct_per_sample_and_per_position() {
        let dev = candle_core::Device::Cpu;
        let logits = Tensor::new(&[[0.1f32, 0.9], [0.8, 0.2], [0.3, 0.7]], &dev).unwrap();
        let y = Tensor::new(&[1u32, 1, 1], &dev).unwrap();
        assert_eq!(count_correct(Labels::ClassPerSample, &logits, &y).unwrap(), (2, 3));
        // [B=1, K=2, H=1, W=3]: predictions 1, 0, 1; targets 1, 255 (ignored), 0.
        let dense = logits.t().unwrap().reshape((1, 2, 1, 3)).unwrap();
        let yd = Tensor::new(&[[[1u32, 255, 0]]], &dev).unwrap();
        assert_eq!(count_correct(Labels::DenseMap { ignore: Some(255) }, &dense, &yd).unwrap(), (1, 2));
        assert_eq!(count_correct(Labels::DenseMap { ignore: None }, &dense, &yd).unwrap(), (1, 3));
    }

    use super::*;
    use candle_core::Device;

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn scalar(x: &Tensor) -> f64 {
        x.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Without weights or ignored targets it is the plain cross-entropy; with them, the weighted
    /// mean over the kept positions, by hand.
    #[test]
    fn weighted_cross_entropy_matches_pytorch_semantics() {
        let logits = t(&[1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 0.3, 0.3, 0.3, 2.0, -2.0, 0.0], &[4, 3]);
        let y = Tensor::from_vec(vec![1u32, 2, 0, 255], 4, &Device::Cpu).unwrap();
        let y3 = Tensor::from_vec(vec![1u32, 2, 0, 0], 4, &Device::Cpu).unwrap();
        let plain = scalar(&CrossEntropy.loss(&logits, &y3).unwrap());
        let same = scalar(&WeightedCrossEntropy::default().loss(&logits, &y3).unwrap());
        assert!((plain - same).abs() < 1e-12, "{plain} vs {same}");
        let rows = logits.to_vec2::<f64>().unwrap();
        let nll = |i: usize, c: usize| {
            let lse = rows[i].iter().map(|x| x.exp()).sum::<f64>().ln();
            lse - rows[i][c]
        };
        let w = [0.5f32, 2.0, 1.0];
        let wce = WeightedCrossEntropy { class_weights: Some(w.to_vec()), ignore_index: Some(255) };
        let got = scalar(&wce.loss(&logits, &y).unwrap());
        let want = (2.0 * nll(0, 1) + 1.0 * nll(1, 2) + 0.5 * nll(2, 0)) / (2.0 + 1.0 + 0.5);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Dense logits [B, K, H, W] are read with K on dim 1.
        let dense = logits.reshape((1, 2, 2, 3)).unwrap().permute((0, 3, 1, 2)).unwrap();
        let yd = y.reshape((1, 2, 2)).unwrap();
        assert!((scalar(&wce.loss(&dense, &yd).unwrap()) - want).abs() < 1e-12);
    }

    /// Its gradient with respect to the logits against central finite differences.
    #[test]
    fn weighted_cross_entropy_gradient_matches_finite_differences() {
        let v = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 0.3, 0.3, 0.3, 2.0, -2.0, 0.0];
        let y = Tensor::from_vec(vec![1u32, 2, 0, 255], 4, &Device::Cpu).unwrap();
        let wce = WeightedCrossEntropy { class_weights: Some(vec![0.5, 2.0, 1.0]), ignore_index: Some(255) };
        let var = candle_core::Var::from_tensor(&t(&v, &[4, 3])).unwrap();
        let g = wce.loss(var.as_tensor(), &y).unwrap().backward().unwrap();
        let grad: Vec<f64> = g.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let eps = 1e-6;
        for i in 0..v.len() {
            let at = |d: f64| {
                let mut w = v;
                w[i] += d;
                scalar(&wce.loss(&t(&w, &[4, 3]), &y).unwrap())
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!((grad[i] - fd).abs() < 1e-8, "logit {i}: {} vs {fd}", grad[i]);
        }
        assert!(grad[9..].iter().all(|g| *g == 0.0), "the ignored row gets no gradient: {grad:?}");
    }

    #[test]
    fn segmentation_metrics_by_hand() {
        // 2 classes + ignore 9; targets [0, 0, 1, 1, 9].
        let logits = t(&[2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0], &[1, 2, 1, 5]);
        let y = Tensor::from_vec(vec![0u32, 0, 1, 1, 9], (1, 1, 5), &Device::Cpu).unwrap();
        let mut m = SegmentationMetric::new(2, Some(9));
        m.update(&logits, &y).unwrap();
        let pred: Vec<u32> = logits.argmax(1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&pred[..4], [0, 1, 1, 1]);
        // Confusion (ignored position left out): class 0: TP 1, 2 targets, 1 prediction → IoU 1/2;
        // class 1: TP 2, 2 targets, 3 predictions → IoU 2/3; pixel accuracy 3/4.
        let v = m.values();
        assert_eq!(v[0].0, "miou");
        assert!((v[0].1 - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-15, "{v:?}");
        assert_eq!(v[1], ("pixel_acc", 0.75));
        assert_eq!(m.class_iou(), [Some(0.5), Some(2.0 / 3.0)]);
        // Per-class accuracy TP / targets: class 0 1/2, class 1 2/2.
        assert_eq!(m.class_accuracy(), [Some(0.5), Some(1.0)]);
        assert_eq!(m.labelled(), 4);
        // A third class in neither targets nor predictions: no IoU, no accuracy, not averaged.
        let mut m3 = SegmentationMetric::new(3, Some(9));
        let logits3 =
            t(&[2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, -9.0, -9.0, -9.0, -9.0, -9.0], &[1, 3, 1, 5]);
        m3.update(&logits3, &y).unwrap();
        assert_eq!(m3.class_iou()[2], None);
        assert_eq!(m3.class_accuracy()[2], None);
        assert_eq!(m3.values(), m.values());
        let logits2 = t(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0], &[1, 2, 1, 5]);
        let mut m = SegmentationMetric::new(2, Some(9));
        m.update(&logits2, &y).unwrap();
        // Predictions [1, 1, 1, 1, ·]: class 0 IoU 0/2, class 1 IoU 2/4.
        assert_eq!(m.values(), [("miou", 0.25), ("pixel_acc", 0.5)]);
    }

    #[test]
    fn classification_accuracy_counts_argmax_hits() {
        let logits = t(&[1.0, 0.0, 0.0, 1.0, 3.0, 2.0], &[3, 2]);
        let y = Tensor::from_vec(vec![0u32, 1, 1], 3, &Device::Cpu).unwrap();
        let mut a = Classification.metric();
        a.update(&logits, &y).unwrap();
        assert_eq!(a.values(), [("acc", 2.0 / 3.0)]);
        assert_eq!(Classification.labels(), Labels::ClassPerSample);
    }
}

//! `dgl eval` of a segmentation run (paper Table 5): the classification report's questions asked
//! in mIoU.
//!
//! On the test split, from the run's checkpoint, one confusion matrix per prediction head (void
//! positions left out, as ESANet's metric):
//!
//! * **mIoU, pixel accuracy and mean class accuracy** of the multimodal prediction and of every
//!   branch (the shared fusion + decoder with the other modality's features zeroed at every fusion
//!   point), and the **IoU of every class** per head;
//! * **modality contributions**: the mIoU `v(S)` of the fusion + decoder with the features of the
//!   modalities outside `S` zeroed, and the Shapley value of each modality in mIoU points (the same
//!   plan as the classification report's);
//! * **robustness**: the multimodal mIoU with one modality's input zeroed or noised.
//!
//! Linear probes (`--probe`) are for classification runs and are refused here.

use std::path::Path;

use dgl_core::task::SegmentationMetric;
use dgl_core::MultimodalModel;
use serde::Serialize;

use super::{
    contributions, corruptions, parameter_counts, plan_of, shapley_method, test_pass, value, Contribution, EvalOptions,
    Restored,
};
use crate::{CliError, Result};

/// One head's scores over the test split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeadIou {
    pub name: String,
    /// Mean of the classes' IoU over the classes present in the targets or the predictions.
    pub miou: f64,
    pub pixel_accuracy: f64,
    /// Mean over the classes present in the targets of TP / (TP + FN).
    pub mean_class_accuracy: f64,
    /// IoU of class k (`None`: absent from targets and predictions).
    pub class_iou: Vec<Option<f64>>,
}

impl HeadIou {
    fn new(name: &str, m: &SegmentationMetric) -> Self {
        let acc: Vec<f64> = m.class_accuracy().into_iter().flatten().collect();
        Self {
            name: name.to_string(),
            miou: value(m, "miou"),
            pixel_accuracy: value(m, "pixel_acc"),
            mean_class_accuracy: acc.iter().sum::<f64>() / acc.len().max(1) as f64,
            class_iou: m.class_iou(),
        }
    }
}

/// The fusion + decoder's mIoU with only `modalities` present.
#[derive(Clone, Debug, Serialize)]
pub struct SubsetIou {
    pub modalities: Vec<String>,
    pub miou: f64,
}

/// Multimodal mIoU under one corruption of one modality.
#[derive(Clone, Debug, Serialize)]
pub struct RobustnessIou {
    pub modality: String,
    pub corruption: String,
    pub miou: f64,
}

/// The report `dgl eval` writes for a segmentation run.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentationReport {
    pub run: String,
    pub method: String,
    pub dataset: String,
    pub checkpoint: String,
    pub test_images: usize,
    /// Test positions with a class (void left out).
    pub labelled_pixels: u64,
    pub num_classes: usize,
    pub parameters: Vec<(String, usize)>,
    pub heads: Vec<HeadIou>,
    pub subsets: Vec<SubsetIou>,
    pub shapley_method: String,
    /// Shapley values in mIoU (fractions; the Markdown shows points).
    pub contributions: Vec<Contribution>,
    pub robustness: Vec<RobustnessIou>,
}

/// Scores the restored segmentation run (see the module doc).
pub(super) fn report(dir: &Path, r: Restored, opts: &EvalOptions, ignore: Option<u32>) -> Result<SegmentationReport> {
    if opts.probe {
        return Err(CliError::Config(format!(
            "dgl eval {}: linear probes (--probe) are for classification runs; a segmentation run's report is \
             mIoU per head, per class, per subset of modalities and under corruptions",
            dir.display()
        )));
    }
    let k = r.setup.data.test.num_classes();
    let names = r.setup.model.modality_names();
    let m = names.len();
    let plan = plan_of(&r);
    let corruptions = corruptions(opts);
    let metric = || SegmentationMetric::new(k, ignore);
    let pass = test_pass(&r, &plan, &corruptions, metric, metric)?;
    let v = pass.subset_scores("miou");
    let subsets =
        pass.reported_subsets(&plan, &names, &v).map(|(modalities, miou)| SubsetIou { modalities, miou }).collect();
    let robustness = pass
        .robustness_rows(&names, &corruptions, "miou")
        .map(|(modality, corruption, miou)| RobustnessIou { modality, corruption, miou })
        .collect();
    Ok(SegmentationReport {
        run: dir.display().to_string(),
        method: r.setup.cfg.method.name().to_string(),
        dataset: r.setup.cfg.data.dataset.kind_name().to_string(),
        checkpoint: r.ckpt.meta.position(),
        test_images: r.setup.data.test.len(),
        labelled_pixels: pass.heads.first().map_or(0, |(_, h)| h.labelled()),
        num_classes: k,
        parameters: parameter_counts(&r.setup.model),
        heads: pass.heads.iter().map(|(n, h)| HeadIou::new(n, h)).collect(),
        subsets,
        shapley_method: shapley_method(&plan),
        contributions: if m >= 2 { contributions(&plan, &v, &names) } else { Vec::new() },
        robustness,
    })
}

impl SegmentationReport {
    /// The report as Markdown tables (percentages).
    pub fn markdown(&self) -> String {
        let pct = |v: f64| format!("{:.2}", 100.0 * v);
        let mut s = format!(
            "# Evaluation of {}\n\nmethod `{}`, dataset `{}`, checkpoint {}, {} test images ({} labelled pixels, \
             {} classes; void pixels left out).\n\n",
            self.run,
            self.method,
            self.dataset,
            self.checkpoint,
            self.test_images,
            self.labelled_pixels,
            self.num_classes
        );
        let params: Vec<String> = self.parameters.iter().map(|(n, c)| format!("{n} {c}")).collect();
        s += &format!("Trainable parameters: {}.\n\n", params.join(", "));
        s += "| head | mIoU % | pixel accuracy % | mean class accuracy % |\n|---|---:|---:|---:|\n";
        for h in &self.heads {
            s += &format!(
                "| {} | {} | {} | {} |\n",
                h.name,
                pct(h.miou),
                pct(h.pixel_accuracy),
                pct(h.mean_class_accuracy)
            );
        }
        s += "\nIoU % per class (— : the class is in neither the labels nor the predictions):\n\n| class |";
        s += &self.heads.iter().map(|h| format!(" {} |", h.name)).collect::<String>();
        s += &format!("\n|---|{}\n", "---:|".repeat(self.heads.len()));
        for c in 0..self.num_classes {
            s += &format!("| {c} |");
            for h in &self.heads {
                s += &format!(" {} |", h.class_iou.get(c).copied().flatten().map_or("—".to_string(), pct));
            }
            s += "\n";
        }
        if !self.contributions.is_empty() {
            s += "\nModality contributions through the fusion + decoder (absent modalities' features zeroed):\n\n";
            s += "| modalities present | mIoU % |\n|---|---:|\n";
            for sub in &self.subsets {
                let label = if sub.modalities.is_empty() { "none".to_string() } else { sub.modalities.join(" + ") };
                s += &format!("| {label} | {} |\n", pct(sub.miou));
            }
            s += &format!(
                "\nShapley values ({}):\n\n| modality | Shapley value (mIoU points) | share % |\n|---|---:|---:|\n",
                self.shapley_method
            );
            for c in &self.contributions {
                s += &format!("| {} | {:.2} | {} |\n", c.modality, 100.0 * c.shapley, pct(c.share));
            }
        }
        if !self.robustness.is_empty() {
            s += "\nRobustness: multimodal mIoU with one modality's input corrupted:\n\n";
            s += "| modality | corruption | mIoU % |\n|---|---|---:|\n";
            for r in &self.robustness {
                s += &format!("| {} | {} | {} |\n", r.modality, r.corruption, pct(r.miou));
            }
        }
        s
    }
}

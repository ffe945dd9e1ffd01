//! `--eval`: the evaluation reports of a table's runs (`dgl eval --probe`, final checkpoints)
//! aggregated per row, mean ± std over seeds; for a segmentation table (`dgl eval`) in mIoU.

use dgl_cli::eval::{EvalReport, SegmentationReport};

use crate::table::Stat;

/// Mean ± std (in %) of `f` over a row's reports; `–` where no report has the value.
fn cell<R>(reports: &[R], f: impl Fn(&R) -> Option<f64>) -> String {
    let xs: Vec<f64> = reports.iter().filter_map(&f).map(|v| 100.0 * v).collect();
    Stat::fmt(Stat::of(&xs))
}

/// The modality names of the first multimodal report.
fn modalities(groups: &[(String, Vec<EvalReport>)]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .find(|r| !r.contributions.is_empty())
        .map(|r| r.contributions.iter().map(|c| c.modality.clone()).collect())
        .unwrap_or_default()
}

/// Two Markdown tables: scores, contributions and probes; robustness.
pub fn markdown(title: &str, groups: &[(String, Vec<EvalReport>)]) -> String {
    let mods = modalities(groups);
    let mut s = format!(
        "# Evaluation: {title}\n\nFinal checkpoints on the test split (`dgl eval --probe`, docs/evaluation.md); \
         accuracy and macro-F1 of the model's prediction (a unimodal model's own), Shapley values of the \
         modalities through the fusion head, test accuracy of linear probes on the frozen encoders. %, mean ± std \
         over seeds.\n\n| row | accuracy | macro-F1 |"
    );
    for m in &mods {
        s += &format!(" Shapley {m} |");
    }
    for m in mods.iter().chain(std::iter::once(&"all".to_string())) {
        s += &format!(" probe {m} |");
    }
    s += "\n|---|---:|---:|";
    s += &"---:|".repeat(2 * mods.len() + 1);
    s += "\n";
    for (row, rs) in groups {
        // The model's own prediction: "multimodal", or a unimodal model's only head.
        let main = |r: &EvalReport| r.scores.first().cloned();
        s += &format!(
            "| {row} | {} | {} |",
            cell(rs, |r| main(r).map(|x| x.accuracy)),
            cell(rs, |r| main(r).map(|x| x.macro_f1))
        );
        for m in &mods {
            s += &format!(" {} |", cell(rs, |r| r.contributions.iter().find(|c| &c.modality == m).map(|c| c.shapley)));
        }
        for m in mods.iter().chain(std::iter::once(&"all".to_string())) {
            s += &format!(" {} |", cell(rs, |r| r.probes.iter().find(|p| &p.features == m).map(|p| p.test_accuracy)));
        }
        s += "\n";
    }
    let corruptions: Vec<(String, String)> = groups
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .find(|r| !r.robustness.is_empty())
        .map(|r| r.robustness.iter().map(|x| (x.modality.clone(), x.corruption.clone())).collect())
        .unwrap_or_default();
    if !corruptions.is_empty() {
        s += "\nRobustness: multimodal accuracy with one modality's input corrupted (%, mean ± std).\n\n| row |";
        for (m, c) in &corruptions {
            s += &format!(" {m} {c} |");
        }
        s += "\n|---|";
        s += &"---:|".repeat(corruptions.len());
        s += "\n";
        for (row, rs) in groups.iter().filter(|(_, rs)| rs.iter().any(|r| !r.robustness.is_empty())) {
            s += &format!("| {row} |");
            for (m, c) in &corruptions {
                s += &format!(
                    " {} |",
                    cell(rs, |r| r
                        .robustness
                        .iter()
                        .find(|x| &x.modality == m && &x.corruption == c)
                        .map(|x| x.accuracy))
                );
            }
            s += "\n";
        }
    }
    s
}

/// The segmentation table's reports: mIoU, pixel accuracy and mean class accuracy of the model's
/// prediction, each branch's mIoU, the Shapley values in mIoU points, and the mIoU with one
/// modality's input zeroed.
pub fn segmentation_markdown(title: &str, groups: &[(String, Vec<SegmentationReport>)]) -> String {
    let first = groups.iter().flat_map(|(_, rs)| rs.iter()).next();
    let mods: Vec<String> =
        first.map(|r| r.contributions.iter().map(|c| c.modality.clone()).collect()).unwrap_or_default();
    let mut s = format!(
        "# Evaluation: {title}\n\nFinal checkpoints on the test split (`dgl eval`, docs/segmentation.md); mIoU, pixel \
         accuracy and mean class accuracy of the multimodal prediction, mIoU of each branch (the other modality zeroed \
         at every fusion point), Shapley values of the modalities in mIoU points, and the multimodal mIoU with one \
         modality's input zeroed. %, mean ± std over seeds.\n\n| row | mIoU | pixel acc. | mean class acc. |"
    );
    for m in &mods {
        s += &format!(" {m} branch |");
    }
    for m in &mods {
        s += &format!(" Shapley {m} |");
    }
    for m in &mods {
        s += &format!(" {m} zeroed |");
    }
    s += &format!("\n|---|---:|---:|---:|{}\n", "---:|".repeat(3 * mods.len()));
    for (row, rs) in groups {
        let head = |r: &SegmentationReport, name: &str| r.heads.iter().find(|h| h.name == name).cloned();
        s += &format!(
            "| {row} | {} | {} | {} |",
            cell(rs, |r| head(r, "multimodal").map(|h| h.miou)),
            cell(rs, |r| head(r, "multimodal").map(|h| h.pixel_accuracy)),
            cell(rs, |r| head(r, "multimodal").map(|h| h.mean_class_accuracy)),
        );
        for m in &mods {
            s += &format!(" {} |", cell(rs, |r| head(r, m).map(|h| h.miou)));
        }
        for m in &mods {
            s += &format!(" {} |", cell(rs, |r| r.contributions.iter().find(|c| &c.modality == m).map(|c| c.shapley)));
        }
        for m in &mods {
            s += &format!(
                " {} |",
                cell(rs, |r| r
                    .robustness
                    .iter()
                    .find(|x| &x.modality == m && x.corruption == "zeroed")
                    .map(|x| x.miou))
            );
        }
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use dgl_cli::eval::{Contribution, HeadIou, RobustnessIou, SegmentationReport};

    fn report(miou: f64, rgb: f64) -> SegmentationReport {
        let head = |name: &str, miou: f64| HeadIou {
            name: name.into(),
            miou,
            pixel_accuracy: 0.5,
            mean_class_accuracy: 0.25,
            class_iou: vec![Some(miou)],
        };
        let contribution =
            |m: &str, v: f64| Contribution { modality: m.into(), shapley: v, shapley_stderr: 0.0, share: 0.5 };
        SegmentationReport {
            run: "r".into(),
            method: "dgl".into(),
            dataset: "synthetic-rgbd".into(),
            checkpoint: "after epoch 1".into(),
            test_images: 2,
            labelled_pixels: 8,
            num_classes: 1,
            parameters: vec![],
            heads: vec![head("multimodal", miou), head("rgb", rgb), head("depth", 0.1)],
            subsets: vec![],
            shapley_method: "exact".into(),
            contributions: vec![contribution("rgb", 0.2), contribution("depth", 0.05)],
            robustness: vec![RobustnessIou { modality: "rgb".into(), corruption: "zeroed".into(), miou: 0.1 }],
        }
    }

    #[test]
    fn segmentation_eval_rows_aggregate_over_seeds() {
        let md = super::segmentation_markdown("t", &[("DGL".into(), vec![report(0.3, 0.2), report(0.4, 0.2)])]);
        let row = md.lines().find(|l| l.starts_with("| DGL |")).unwrap();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // row, mIoU, pixel acc., mean class acc., rgb branch, depth branch, Shapley ×2, zeroed ×2.
        assert_eq!(cells[1..11].len(), 10, "{row}");
        assert!(cells[2].starts_with("35.00"), "{row}");
        assert!(cells[3].starts_with("50.00") && cells[4].starts_with("25.00"), "{row}");
        assert!(cells[5].starts_with("20.00") && cells[7].starts_with("20.00"), "{row}");
        assert!(cells[9].starts_with("10.00") && cells[10] == "–", "{row}");
        assert!(md.contains("| rgb branch | depth branch | Shapley rgb | Shapley depth | rgb zeroed | depth zeroed |"));
    }
}

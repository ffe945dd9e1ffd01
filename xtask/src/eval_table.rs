//! `--eval`: the evaluation reports of a table's runs (`dgl eval --probe`, final checkpoints)
//! aggregated per row, mean ± std over seeds.

use dgl_cli::eval::EvalReport;

use crate::table::Stat;

/// Mean ± std (in %) of `f` over a row's reports; `–` where no report has the value.
fn cell(reports: &[EvalReport], f: impl Fn(&EvalReport) -> Option<f64>) -> String {
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

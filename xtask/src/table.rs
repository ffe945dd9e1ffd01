//! Table aggregation and writing: Multi and one column per branch (modality) per row, mean ± std
//! over seeds, at the selected epoch and at the last epoch, the paper's numbers beside ours.

use dgl_cli::run_dir::Row;

/// How the reported epoch of a run is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The epoch with the best validation accuracy (a split carved from the training set).
    BestValidation,
    /// The paper's protocol: the epoch with the best *test* accuracy (optimistic).
    BestTest,
}

impl Protocol {
    pub fn describe(self) -> &'static str {
        match self {
            Protocol::BestValidation => "epoch selected on a validation split carved from the training set",
            Protocol::BestTest => "epoch selected on the TEST set (the paper's optimistic protocol)",
        }
    }
}

/// What a table reports: accuracy (classification) or mIoU (segmentation), read from the runs'
/// `test_<key>`, `val_<key>` and `test_<key>_<modality>` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    Accuracy,
    MeanIou,
}

impl Score {
    /// The metric's column key (`acc`, `miou`).
    pub fn key(self) -> &'static str {
        match self {
            Score::Accuracy => "acc",
            Score::MeanIou => "miou",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Score::Accuracy => "Test accuracy (%)",
            Score::MeanIou => "Test mIoU (%)",
        }
    }
}

/// Test scores (in %) of one run at one epoch: the multimodal prediction and each branch
/// (`test_<key>_<modality>` columns, in the order the run wrote them).
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub epoch: usize,
    pub multi: f64,
    pub branches: Vec<(String, f64)>,
}

impl Cell {
    fn of(row: &Row, score: Score) -> Option<Cell> {
        let prefix = format!("test_{}_", score.key());
        let branches =
            row.0.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|m| (m.to_string(), 100.0 * v))).collect();
        let multi = 100.0 * row.get(&format!("test_{}", score.key()))?;
        Some(Cell { epoch: row.get("epoch")? as usize, multi, branches })
    }

    /// The epoch chosen by `protocol`: the first epoch with the maximum of its score.
    pub fn select(rows: &[Row], protocol: Protocol, score: Score) -> Option<Cell> {
        let key = match protocol {
            Protocol::BestValidation => format!("val_{}", score.key()),
            Protocol::BestTest => format!("test_{}", score.key()),
        };
        let key = key.as_str();
        // First epoch with the maximum (ties keep the earliest).
        let best = rows.iter().fold(None::<&Row>, |b, r| match (b, r.get(key)) {
            (None, Some(_)) => Some(r),
            (Some(x), Some(v)) if v > x.get(key).unwrap_or(f64::NEG_INFINITY) => Some(r),
            (b, _) => b,
        })?;
        Cell::of(best, score)
    }

    /// The last epoch of the run (no selection at all).
    pub fn last(rows: &[Row], score: Score) -> Option<Cell> {
        Cell::of(rows.last()?, score)
    }

    pub fn branch(&self, name: &str) -> Option<f64> {
        self.branches.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// mean ± sample standard deviation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(xs: &[f64]) -> Option<Stat> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let std =
            if n > 1 { (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(Stat { mean, std, n })
    }
    pub fn fmt(s: Option<Stat>) -> String {
        match s {
            Some(s) if s.n > 1 => format!("{:.2} ± {:.2}", s.mean, s.std),
            Some(s) => format!("{:.2}", s.mean),
            None => "–".into(),
        }
    }
    fn json(s: Option<Stat>) -> serde_json::Value {
        match s {
            Some(s) => serde_json::json!({"mean": s.mean, "std": s.std, "n": s.n}),
            None => serde_json::Value::Null,
        }
    }
}

/// The paper's Multi and per-modality branch accuracies for a row (no branches for unimodal rows).
#[derive(Clone, Debug, PartialEq)]
pub struct PaperNumbers {
    pub multi: f64,
    /// (modality, accuracy), e.g. `("audio", 59.62)`.
    pub branches: Vec<(&'static str, f64)>,
}

impl PaperNumbers {
    /// The paper's accuracy of branch `name`, if reported.
    pub fn branch(&self, name: &str) -> Option<f64> {
        self.branches.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// One row's statistics at one kind of epoch: Multi and one entry per table branch (aligned with
/// [`Table::branches`]; `None` where a seed lacks the branch, e.g. the unimodal rows).
#[derive(Clone, Debug, PartialEq)]
pub struct Columns {
    pub multi: Option<Stat>,
    pub branches: Vec<Option<Stat>>,
}

impl Columns {
    fn aggregate(cells: &[Cell], branches: &[String]) -> Columns {
        let col = |f: &dyn Fn(&Cell) -> Option<f64>| {
            let v: Vec<f64> = cells.iter().filter_map(f).collect();
            if v.len() == cells.len() {
                Stat::of(&v)
            } else {
                None
            }
        };
        Columns { multi: col(&|c| Some(c.multi)), branches: branches.iter().map(|b| col(&|c| c.branch(b))).collect() }
    }

    fn json(&self, names: &[String]) -> serde_json::Value {
        let branches: serde_json::Map<String, serde_json::Value> =
            names.iter().zip(&self.branches).map(|(n, s)| (n.clone(), Stat::json(*s))).collect();
        serde_json::json!({"multi": Stat::json(self.multi), "branches": branches})
    }
}

pub struct TableRow {
    pub label: String,
    /// At the epoch the table's protocol selects.
    pub selected: Columns,
    /// At the last epoch of each run.
    pub last: Columns,
    pub seeds: usize,
    pub paper: Option<PaperNumbers>,
}

impl TableRow {
    /// Aggregates a row's runs: `selected[i]` and `last[i]` are the same seed's two epochs.
    pub fn aggregate(
        label: &str,
        selected: &[Cell],
        last: &[Cell],
        branches: &[String],
        paper: Option<PaperNumbers>,
    ) -> TableRow {
        TableRow {
            label: label.to_string(),
            selected: Columns::aggregate(selected, branches),
            last: Columns::aggregate(last, branches),
            seeds: selected.len(),
            paper,
        }
    }
}

/// The union of the cells' branch names, in order of first appearance.
pub fn branch_names<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for c in cells {
        for (n, _) in &c.branches {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    names
}

pub struct Table {
    pub title: String,
    pub protocol: Protocol,
    pub score: Score,
    /// The branch (modality) columns, e.g. `audio`, `visual`.
    pub branches: Vec<String>,
    pub rows: Vec<TableRow>,
}

/// `audio` → `Audio`.
fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

impl Table {
    fn has_paper(&self) -> bool {
        self.rows.iter().any(|r| r.paper.is_some())
    }

    /// The paper's Multi then one value per table branch.
    fn paper_cells(&self, p: &Option<PaperNumbers>) -> Vec<Option<f64>> {
        let mut v = vec![p.as_ref().map(|p| p.multi)];
        v.extend(self.branches.iter().map(|b| p.as_ref().and_then(|p| p.branch(b))));
        v
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "### {}\n\n{}, {}; the \"(last)\" columns are the last epoch of each run (no selection).\n\n",
            self.title,
            self.score.describe(),
            self.protocol.describe()
        );
        let names: Vec<String> = self.branches.iter().map(|b| title_case(b)).collect();
        let mut header = vec!["Method".to_string(), "Multi".into()];
        header.extend(names.iter().cloned());
        header.push("Multi (last)".into());
        header.extend(names.iter().map(|n| format!("{n} (last)")));
        if self.has_paper() {
            header.push("paper Multi".into());
            header.extend(names.iter().map(|n| format!("paper {n}")));
        }
        s += &format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
        for r in &self.rows {
            let mut cells = vec![r.label.clone(), Stat::fmt(r.selected.multi)];
            cells.extend(r.selected.branches.iter().map(|b| Stat::fmt(*b)));
            cells.push(Stat::fmt(r.last.multi));
            cells.extend(r.last.branches.iter().map(|b| Stat::fmt(*b)));
            if self.has_paper() {
                cells.extend(
                    self.paper_cells(&r.paper).into_iter().map(|v| v.map_or("–".to_string(), |v| format!("{v:.2}"))),
                );
            }
            s += &format!("| {} |\n", cells.join(" | "));
        }
        s
    }

    pub fn csv(&self) -> String {
        let mut header = vec!["method".to_string(), "seeds".into()];
        for prefix in ["", "last_"] {
            for col in std::iter::once("multi").chain(self.branches.iter().map(String::as_str)) {
                header.push(format!("{prefix}{col}_mean"));
                header.push(format!("{prefix}{col}_std"));
            }
        }
        header.push("paper_multi".into());
        header.extend(self.branches.iter().map(|b| format!("paper_{b}")));
        let mut s = header.join(",") + "\n";
        let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.4}"));
        for r in &self.rows {
            let mut line = vec![r.label.replace(',', " "), r.seeds.to_string()];
            for cols in [&r.selected, &r.last] {
                for st in std::iter::once(&cols.multi).chain(&cols.branches) {
                    line.push(f(st.map(|x| x.mean)));
                    line.push(f(st.map(|x| x.std)));
                }
            }
            line.extend(self.paper_cells(&r.paper).into_iter().map(f));
            s += &(line.join(",") + "\n");
        }
        s
    }

    pub fn json(&self) -> String {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "method": r.label, "seeds": r.seeds,
                    "selected": r.selected.json(&self.branches), "last": r.last.json(&self.branches),
                    "paper": r.paper.as_ref().map(|p| {
                        let mut o = serde_json::Map::new();
                        o.insert("multi".into(), p.multi.into());
                        for (n, v) in &p.branches {
                            o.insert(n.to_string(), (*v).into());
                        }
                        serde_json::Value::Object(o)
                    }),
                })
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "title": self.title, "protocol": self.protocol.describe(), "branches": self.branches, "rows": rows
        }))
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: f64, val: f64, test: f64, a: f64, v: f64) -> Row {
        let mut r = Row::default();
        r.push("epoch", epoch);
        r.push("val_acc", val);
        r.push("test_acc", test);
        r.push("test_acc_audio", a);
        r.push("test_acc_visual", v);
        r
    }

    fn cell(multi: f64, audio: Option<f64>) -> Cell {
        Cell { epoch: 1, multi, branches: audio.map(|a| ("audio".to_string(), a)).into_iter().collect() }
    }

    #[test]
    fn selection_protocols_and_aggregation() {
        let rows = vec![row(1.0, 0.5, 0.9, 0.1, 0.2), row(2.0, 0.7, 0.6, 0.3, 0.4), row(3.0, 0.7, 0.8, 0.5, 0.6)];
        let v = Cell::select(&rows, Protocol::BestValidation, Score::Accuracy).unwrap();
        assert_eq!(v.epoch, 2, "ties keep the earliest epoch");
        assert!((v.multi - 60.0).abs() < 1e-9 && (v.branch("audio").unwrap() - 30.0).abs() < 1e-9);
        let t = Cell::select(&rows, Protocol::BestTest, Score::Accuracy).unwrap();
        assert_eq!(t.epoch, 1);
        let l = Cell::last(&rows, Score::Accuracy).unwrap();
        assert_eq!((l.epoch, l.branch("visual").map(|x| (x - 60.0).abs() < 1e-9)), (3, Some(true)));
        assert_eq!(branch_names([&v]), ["audio", "visual"]);

        let branches = vec!["audio".to_string(), "visual".to_string()];
        let selected = [cell(60.0, Some(50.0)), cell(70.0, Some(54.0))];
        let last = [cell(50.0, Some(40.0)), cell(52.0, None)];
        let paper = Some(PaperNumbers { multi: 77.48, branches: vec![("audio", 63.12), ("visual", 69.11)] });
        let r = TableRow::aggregate("X", &selected, &last, &branches, paper);
        let m = r.selected.multi.unwrap();
        assert!((m.mean - 65.0).abs() < 1e-12 && (m.std - 50f64.sqrt()).abs() < 1e-12);
        assert!(r.selected.branches[1].is_none(), "no seed has a visual branch");
        assert!(r.last.branches[0].is_none(), "one seed lacks the audio branch at its last epoch");
        let t =
            Table { title: "t".into(), protocol: Protocol::BestTest, score: Score::Accuracy, branches, rows: vec![r] };
        let md = t.markdown();
        assert!(
            md.contains("| Method | Multi | Audio | Visual | Multi (last) | Audio (last) | Visual (last) |"),
            "{md}"
        );
        assert!(
            md.contains("| X | 65.00 ± 7.07 | 52.00 ± 2.83 | – | 51.00 ± 1.41 | – | – | 77.48 | 63.12 | 69.11 |"),
            "{md}"
        );
        assert!(md.contains("TEST set"));
        let csv = t.csv();
        assert!(
            csv.starts_with(
                "method,seeds,multi_mean,multi_std,audio_mean,audio_std,visual_mean,visual_std,last_multi_mean,"
            ),
            "{csv}"
        );
        assert!(
            csv.lines().nth(1).unwrap().starts_with("X,2,65.0000,7.0711,52.0000,2.8284,,,51.0000,1.4142,,,,,77.4800"),
            "{csv}"
        );
        let j: serde_json::Value = serde_json::from_str(&t.json()).unwrap();
        assert_eq!(j["rows"][0]["selected"]["multi"]["n"], 2);
        assert_eq!(j["rows"][0]["last"]["branches"]["audio"], serde_json::Value::Null);
    }

    /// A dataset with other modality names gets its own columns (no paper columns without paper numbers).
    #[test]
    fn branches_of_any_dataset() {
        let c = Cell {
            epoch: 2,
            multi: 80.0,
            branches: vec![("text".into(), 70.0), ("pose".into(), 60.0), ("depth".into(), 50.0)],
        };
        let names = branch_names([&c]);
        let r = TableRow::aggregate("DGL", std::slice::from_ref(&c), std::slice::from_ref(&c), &names, None);
        let t = Table {
            title: "t".into(),
            protocol: Protocol::BestValidation,
            score: Score::Accuracy,
            branches: names,
            rows: vec![r],
        };
        let md = t.markdown();
        assert!(md.contains("| Method | Multi | Text | Pose | Depth | Multi (last) | Text (last) | Pose (last) | Depth (last) |\n|---|---|---|---|---|---|---|---|---|\n"), "{md}");
        assert!(md.contains("| DGL | 80.00 | 70.00 | 60.00 | 50.00 | 80.00 | 70.00 | 60.00 | 50.00 |"), "{md}");
        assert!(!md.contains("paper"));
    }
}

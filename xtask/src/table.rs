//! Table aggregation and writing: Multi / Audio / Visual per row, mean ± std over seeds, the
//! paper's numbers beside ours.

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

/// Test accuracies (in %) of one run at its selected epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub epoch: usize,
    pub multi: f64,
    pub audio: Option<f64>,
    pub visual: Option<f64>,
}

impl Cell {
    pub fn select(rows: &[Row], protocol: Protocol) -> Option<Cell> {
        let key = match protocol {
            Protocol::BestValidation => "val_acc",
            Protocol::BestTest => "test_acc",
        };
        // First epoch with the maximum (ties keep the earliest).
        let best = rows.iter().fold(None::<&Row>, |b, r| match (b, r.get(key)) {
            (None, Some(_)) => Some(r),
            (Some(x), Some(v)) if v > x.get(key).unwrap_or(f64::NEG_INFINITY) => Some(r),
            (b, _) => b,
        })?;
        Some(Cell {
            epoch: best.get("epoch")? as usize,
            multi: 100.0 * best.get("test_acc")?,
            audio: best.get("test_acc_audio").map(|v| 100.0 * v),
            visual: best.get("test_acc_visual").map(|v| 100.0 * v),
        })
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
}

/// The paper's Multi / Audio / Visual for a row (Audio/Visual absent for unimodal rows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaperNumbers {
    pub multi: f64,
    pub audio: Option<f64>,
    pub visual: Option<f64>,
}

pub struct TableRow {
    pub label: String,
    pub multi: Option<Stat>,
    pub audio: Option<Stat>,
    pub visual: Option<Stat>,
    pub seeds: usize,
    pub paper: Option<PaperNumbers>,
}

impl TableRow {
    pub fn aggregate(label: &str, cells: &[Cell], paper: Option<PaperNumbers>) -> TableRow {
        let col = |f: &dyn Fn(&Cell) -> Option<f64>| {
            let v: Vec<f64> = cells.iter().filter_map(f).collect();
            if v.len() == cells.len() {
                Stat::of(&v)
            } else {
                None
            }
        };
        TableRow {
            label: label.to_string(),
            multi: col(&|c| Some(c.multi)),
            audio: col(&|c| c.audio),
            visual: col(&|c| c.visual),
            seeds: cells.len(),
            paper,
        }
    }
}

pub struct Table {
    pub title: String,
    pub protocol: Protocol,
    pub rows: Vec<TableRow>,
}

impl Table {
    fn has_paper(&self) -> bool {
        self.rows.iter().any(|r| r.paper.is_some())
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n\nTest accuracy (%), {}.\n\n", self.title, self.protocol.describe());
        let paper = self.has_paper();
        s += "| Method | Multi | Audio | Visual |";
        if paper {
            s += " paper Multi | paper Audio | paper Visual |";
        }
        s += "\n|---|---|---|---|";
        if paper {
            s += "---|---|---|";
        }
        s += "\n";
        for r in &self.rows {
            s +=
                &format!("| {} | {} | {} | {} |", r.label, Stat::fmt(r.multi), Stat::fmt(r.audio), Stat::fmt(r.visual));
            if paper {
                let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
                let p = r.paper;
                s += &format!(
                    " {} | {} | {} |",
                    f(p.map(|p| p.multi)),
                    f(p.and_then(|p| p.audio)),
                    f(p.and_then(|p| p.visual))
                );
            }
            s += "\n";
        }
        s
    }

    pub fn csv(&self) -> String {
        let mut s = String::from("method,seeds,multi_mean,multi_std,audio_mean,audio_std,visual_mean,visual_std,paper_multi,paper_audio,paper_visual\n");
        let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.4}"));
        for r in &self.rows {
            let p = r.paper;
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                r.label.replace(',', " "),
                r.seeds,
                f(r.multi.map(|x| x.mean)),
                f(r.multi.map(|x| x.std)),
                f(r.audio.map(|x| x.mean)),
                f(r.audio.map(|x| x.std)),
                f(r.visual.map(|x| x.mean)),
                f(r.visual.map(|x| x.std)),
                f(p.map(|p| p.multi)),
                f(p.and_then(|p| p.audio)),
                f(p.and_then(|p| p.visual)),
            );
        }
        s
    }

    pub fn json(&self) -> String {
        let stat = |s: Option<Stat>| match s {
            Some(s) => serde_json::json!({"mean": s.mean, "std": s.std, "n": s.n}),
            None => serde_json::Value::Null,
        };
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "method": r.label, "seeds": r.seeds,
                    "multi": stat(r.multi), "audio": stat(r.audio), "visual": stat(r.visual),
                    "paper": r.paper.map(|p| serde_json::json!({"multi": p.multi, "audio": p.audio, "visual": p.visual})),
                })
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "title": self.title, "protocol": self.protocol.describe(), "rows": rows
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

    #[test]
    fn selection_protocols_and_aggregation() {
        let rows = vec![row(1.0, 0.5, 0.9, 0.1, 0.2), row(2.0, 0.7, 0.6, 0.3, 0.4), row(3.0, 0.7, 0.8, 0.5, 0.6)];
        let v = Cell::select(&rows, Protocol::BestValidation).unwrap();
        assert_eq!(v.epoch, 2, "ties keep the earliest epoch");
        assert!((v.multi - 60.0).abs() < 1e-9 && (v.audio.unwrap() - 30.0).abs() < 1e-9);
        let t = Cell::select(&rows, Protocol::BestTest).unwrap();
        assert_eq!(t.epoch, 1);
        let cells = [
            Cell { epoch: 1, multi: 60.0, audio: Some(50.0), visual: None },
            Cell { epoch: 1, multi: 70.0, audio: Some(54.0), visual: None },
        ];
        let r = TableRow::aggregate(
            "X",
            &cells,
            Some(PaperNumbers { multi: 77.48, audio: Some(63.12), visual: Some(69.11) }),
        );
        let m = r.multi.unwrap();
        assert!((m.mean - 65.0).abs() < 1e-12 && (m.std - 50f64.sqrt()).abs() < 1e-12);
        assert!(r.visual.is_none());
        let t = Table { title: "t".into(), protocol: Protocol::BestTest, rows: vec![r] };
        let md = t.markdown();
        assert!(md.contains("| X | 65.00 ± 7.07 | 52.00 ± 2.83 | – | 77.48 | 63.12 | 69.11 |"), "{md}");
        assert!(md.contains("TEST set"));
        let csv = t.csv();
        assert!(csv.lines().nth(1).unwrap().starts_with("X,2,65.0000,7.0711,52.0000,2.8284,,,77.4800"), "{csv}");
        let j: serde_json::Value = serde_json::from_str(&t.json()).unwrap();
        assert_eq!(j["rows"][0]["multi"]["n"], 2);
    }
}

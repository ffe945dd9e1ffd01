//! What a loader (or [`prepare`](fn@super::prepare)) found: ok / missing / corrupt items per split and class,
//! and the message of every problem.
//!
//! Without `skip_bad` the first problem is an error; with it, bad items are left out and counted
//! here. An item is *missing* when a file or folder it needs does not exist (or a frame folder has
//! no frames), *corrupt* when a file exists but cannot be used (empty, truncated, not audio, bad
//! image, NaN/Inf, wrong shape, …).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dataset::Split;
use crate::error::DataError;

/// Item counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: usize,
    pub missing: usize,
    pub corrupt: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.ok + self.missing + self.corrupt
    }
    pub fn bad(&self) -> usize {
        self.missing + self.corrupt
    }
    fn add(&mut self, o: &Counts) {
        self.ok += o.ok;
        self.missing += o.missing;
        self.corrupt += o.corrupt;
    }
}

/// Missing or corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Missing,
    Corrupt,
}

impl ProblemKind {
    /// `Io` errors whose kind is `NotFound` are missing items; everything else is corrupt.
    pub fn of(e: &DataError) -> Self {
        match e {
            DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ProblemKind::Missing,
            _ => ProblemKind::Corrupt,
        }
    }
}

/// One bad item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub split: Split,
    /// The item's class when known.
    pub class: Option<u32>,
    /// The item (clip id, file name, dataset index).
    pub item: String,
    pub kind: ProblemKind,
    /// The error, naming the file (and line).
    pub message: String,
}

/// Counts of one split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitReport {
    pub split: Split,
    /// Indexed by label.
    pub per_class: Vec<Counts>,
    /// Items whose class could not be determined (e.g. a file name that does not parse).
    pub unclassified: Counts,
}

impl SplitReport {
    pub fn total(&self) -> Counts {
        let mut c = self.unclassified;
        for x in &self.per_class {
            c.add(x);
        }
        c
    }
}

/// The report of a load or a [`prepare`](fn@super::prepare) run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    pub splits: Vec<SplitReport>,
    /// Every bad item, in the order found.
    pub problems: Vec<Problem>,
    /// Remarks that are not item problems (e.g. class folders ignored on request).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(class_names: Vec<String>) -> Self {
        Self { class_names, ..Default::default() }
    }

    fn split_mut(&mut self, split: Split) -> &mut SplitReport {
        if let Some(i) = self.splits.iter().position(|s| s.split == split) {
            return &mut self.splits[i];
        }
        self.splits.push(SplitReport {
            split,
            per_class: vec![Counts::default(); self.class_names.len()],
            unclassified: Counts::default(),
        });
        self.splits.last_mut().expect("just pushed")
    }

    fn counts_mut(&mut self, split: Split, class: Option<u32>) -> &mut Counts {
        let s = self.split_mut(split);
        match class {
            Some(c) => {
                let c = c as usize;
                if s.per_class.len() <= c {
                    s.per_class.resize(c + 1, Counts::default());
                }
                &mut s.per_class[c]
            }
            None => &mut s.unclassified,
        }
    }

    /// Makes sure `split` has an entry (zero counts).
    pub fn touch(&mut self, split: Split) {
        self.split_mut(split);
    }

    pub fn record_ok(&mut self, split: Split, class: u32) {
        self.counts_mut(split, Some(class)).ok += 1;
    }

    /// Counts a usable item whose class is not known without decoding it (a dense sample before
    /// its label map is read).
    pub fn record_ok_unclassified(&mut self, split: Split) {
        self.counts_mut(split, None).ok += 1;
    }

    /// Records a bad item from its error; returns its kind.
    pub fn record_problem(
        &mut self,
        split: Split,
        class: Option<u32>,
        item: impl Into<String>,
        e: &DataError,
    ) -> ProblemKind {
        let kind = ProblemKind::of(e);
        let c = self.counts_mut(split, class);
        match kind {
            ProblemKind::Missing => c.missing += 1,
            ProblemKind::Corrupt => c.corrupt += 1,
        }
        self.problems.push(Problem { split, class, item: item.into(), kind, message: e.to_string() });
        kind
    }

    /// The counts of a split (zeros if absent).
    pub fn counts(&self, split: Split) -> Counts {
        self.splits.iter().find(|s| s.split == split).map(|s| s.total()).unwrap_or_default()
    }

    /// The counts of one class of one split.
    pub fn class_counts(&self, split: Split, class: u32) -> Counts {
        self.splits
            .iter()
            .find(|s| s.split == split)
            .and_then(|s| s.per_class.get(class as usize).copied())
            .unwrap_or_default()
    }

    /// All splits together.
    pub fn total(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.splits {
            c.add(&s.total());
        }
        c
    }

    /// No missing or corrupt item.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.total().bad() == 0
    }

    /// Adds `other`'s counts, problems and notes (class names are taken from `other` if this
    /// report has none).
    pub fn merge(&mut self, other: &Report) {
        if self.class_names.is_empty() {
            self.class_names = other.class_names.clone();
        }
        for s in &other.splits {
            self.touch(s.split);
            for (c, x) in s.per_class.iter().enumerate() {
                self.counts_mut(s.split, Some(c as u32)).add(x);
            }
            self.counts_mut(s.split, None).add(&s.unclassified);
        }
        self.problems.extend(other.problems.iter().cloned());
        self.notes.extend(other.notes.iter().cloned());
    }
}

impl fmt::Display for Report {
    /// A human summary: totals per split, the classes with problems, the first problems.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.splits {
            let t = s.total();
            write!(f, "{:?}: {} ok, {} missing, {} corrupt", s.split, t.ok, t.missing, t.corrupt)?;
            let bad: Vec<String> = s
                .per_class
                .iter()
                .enumerate()
                .filter(|(_, c)| c.bad() > 0)
                .map(|(i, c)| {
                    let name = self.class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
                    format!("{name} {}m/{}c", c.missing, c.corrupt)
                })
                .collect();
            if !bad.is_empty() {
                write!(f, " (by class: {})", bad.join(", "))?;
            }
            if s.unclassified.bad() > 0 {
                write!(f, " (unclassified: {}m/{}c)", s.unclassified.missing, s.unclassified.corrupt)?;
            }
            writeln!(f)?;
        }
        for p in self.problems.iter().take(10) {
            writeln!(f, "  {:?} {}: {}", p.kind, p.item, p.message)?;
        }
        if self.problems.len() > 10 {
            writeln!(f, "  … and {} more problems", self.problems.len() - 10)?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

//! What the selection protocol changes besides the selecting split: the training data of each row.
//! Under the default protocol every run carves a validation split from the training set, which
//! selects the epoch; under `--paper-protocol` the test set selects it (as the official code does),
//! so a run trains on the whole training split unless its method itself needs a validation split
//! (D&R, G-Blending OGR: their descriptors' `needs_validation`, applied by the loop).

use dgl_cli::run_dir::Row;

/// Whether every run of the table carves a validation split (`data.always_validate`).
pub fn always_validate(paper_protocol: bool) -> bool {
    !paper_protocol
}

/// The training data of a run: the whole training split, or the training split minus the
/// validation split carved from it (the run's metrics then have `val_acc`, or `val_miou` for segmentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainedOn {
    WholeTrainSplit,
    TrainMinusValidation,
}

impl TrainedOn {
    pub fn of(rows: &[Row]) -> TrainedOn {
        if rows.iter().any(|r| r.get("val_acc").is_some() || r.get("val_miou").is_some()) {
            TrainedOn::TrainMinusValidation
        } else {
            TrainedOn::WholeTrainSplit
        }
    }

    fn describe(self) -> &'static str {
        match self {
            TrainedOn::WholeTrainSplit => "the whole training split",
            TrainedOn::TrainMinusValidation => "the training split minus the validation split",
        }
    }
}

/// The lines written under a table: which split selected the epochs and, per kind of training
/// data, the rows that trained on it (`rows`: each row's label and the training data of its runs).
pub fn note(paper_protocol: bool, rows: &[(String, Vec<TrainedOn>)]) -> String {
    let selected = if paper_protocol { "the test set" } else { "the validation split" };
    let mut parts = Vec::new();
    for kind in [TrainedOn::WholeTrainSplit, TrainedOn::TrainMinusValidation] {
        let labels: Vec<&str> = rows.iter().filter(|(_, t)| t.contains(&kind)).map(|(l, _)| l.as_str()).collect();
        if !labels.is_empty() {
            parts.push(format!("{} ({})", kind.describe(), labels.join(", ")));
        }
    }
    format!("\nEpoch selected on {selected}. Trained on {}.\n", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dgl_baselines::{MethodConfig, MethodKind};
    use dgl_cli::config::{Preset, TrainConfig};

    /// `--paper-protocol` trains every method on the whole training split except those that need a
    /// validation split; the default protocol carves one out for every method.
    #[test]
    fn paper_protocol_carves_a_validation_split_only_where_the_method_needs_one() {
        for paper in [true, false] {
            for &kind in MethodKind::ALL {
                let mut cfg = TrainConfig::preset(Preset::Tiny);
                cfg.data.always_validate = always_validate(paper);
                cfg.method = MethodConfig::new(kind);
                let own = matches!(kind, MethodKind::Dnr | MethodKind::GBlendingOgr);
                assert_eq!(dgl_cli::methods::needs_validation(&cfg), own || !paper, "{kind}, paper protocol {paper}");
            }
        }
    }

    fn rows(val: bool) -> Vec<Row> {
        let mut r = Row::default();
        r.push("epoch", 1.0);
        if val {
            r.push("val_acc", 0.5);
        }
        r.push("test_acc", 0.6);
        vec![r]
    }

    #[test]
    fn the_note_names_the_selecting_split_and_each_rows_training_data() {
        assert!(always_validate(false) && !always_validate(true));
        assert_eq!(TrainedOn::of(&rows(true)), TrainedOn::TrainMinusValidation);
        assert_eq!(TrainedOn::of(&rows(false)), TrainedOn::WholeTrainSplit);
        let table = [
            ("Concat".to_string(), vec![TrainedOn::of(&rows(false)); 2]),
            ("D&R".to_string(), vec![TrainedOn::of(&rows(true)); 2]),
            ("DGL".to_string(), vec![TrainedOn::WholeTrainSplit]),
        ];
        assert_eq!(
            note(true, &table),
            "\nEpoch selected on the test set. Trained on the whole training split (Concat, DGL); \
             the training split minus the validation split (D&R).\n"
        );
        let all_val = [("Concat".to_string(), vec![TrainedOn::TrainMinusValidation])];
        assert_eq!(
            note(false, &all_val),
            "\nEpoch selected on the validation split. Trained on the training split minus the validation split (Concat).\n"
        );
    }
}

//! Resource limits: upper bounds on sizes a configuration or an input may ask for, checked before
//! anything is allocated, so that an absurd value is refused with a message instead of
//! exhausting memory.
//!
//! One mechanism for every crate: a [`Limit`] is a named constant (its configuration key, its
//! default bound and the `DGL_MAX_*` environment variable that raises it for a real need); each
//! crate keeps its own limits together in one place (`dgl_models::limits`, the CLI's
//! `config::limits`, …). The message of a refused value names the key, the value, the bound and
//! the variable.

/// A value above its [`Limit`], or a `DGL_MAX_*` variable that is not a positive integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("`{key}` = {value} exceeds the limit {limit} ({what}); if this is really needed, raise it with the environment variable {env}=<n>")]
    Exceeded { key: String, value: u128, limit: u64, what: &'static str, env: &'static str },
    #[error("environment variable {env} = `{text}` is not a positive integer (it sets the limit of `{key}`)")]
    BadOverride { key: String, env: &'static str, text: String },
}

/// An upper bound on one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The configuration key (or quantity) it bounds, e.g. `model.base_width`.
    pub key: &'static str,
    /// What the bound protects, for the message (e.g. `ResNet width; parameters grow with its square`).
    pub what: &'static str,
    /// The bound when `env` is not set.
    pub default: u64,
    /// The environment variable that overrides the bound (`DGL_MAX_…`).
    pub env: &'static str,
}

impl Limit {
    /// The bound in force: `env` when set (a positive integer, `_` separators allowed), else
    /// `default`.
    pub fn value(&self) -> Result<u64, LimitError> {
        match std::env::var_os(self.env) {
            None => Ok(self.default),
            Some(v) => {
                let text = v.to_string_lossy().into_owned();
                match text.trim().replace('_', "").parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(LimitError::BadOverride { key: self.key.into(), env: self.env, text }),
                }
            }
        }
    }

    /// `Ok` when `value` is at most the bound in force.
    pub fn check(&self, value: impl Into<u128>) -> Result<(), LimitError> {
        self.check_key(self.key, value)
    }

    /// [`Limit::check`] naming `key` in the message (e.g. `model.modalities[1].encoder.hidden[0]`
    /// for the limit of every hidden size).
    pub fn check_key(&self, key: &str, value: impl Into<u128>) -> Result<(), LimitError> {
        let (value, limit) = (value.into(), self.value()?);
        if value <= limit as u128 {
            Ok(())
        } else {
            Err(LimitError::Exceeded { key: key.into(), value, limit, what: self.what, env: self.env })
        }
    }
}

/// Frames per clip: the data loaders' `frames` and the model's `model.frames` (the paper's are 1 to
/// 3); one limit, so the two can never disagree.
pub const FRAMES: Limit =
    Limit { key: "frames", what: "frames per clip; the paper's are 1 to 3", default: 256, env: "DGL_MAX_FRAMES" };

/// Classes: the logits of a classifier and the labels of a dataset (VGGSound has 309).
pub const CLASSES: Limit = Limit {
    key: "num_classes",
    what: "number of classes (logits); VGGSound has 309",
    default: 100_000,
    env: "DGL_MAX_CLASSES",
};

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limit = Limit { key: "x.size", what: "a test bound", default: 10, env: "DGL_MAX_TEST_LIMIT_UNSET" };

    #[test]
    fn check_names_key_value_limit_and_variable() {
        assert!(L.check(10u64).is_ok());
        let e = L.check(11u64).unwrap_err().to_string();
        for part in ["`x.size` = 11", "limit 10", "DGL_MAX_TEST_LIMIT_UNSET=<n>", "a test bound"] {
            assert!(e.contains(part), "{e}");
        }
        let e = L.check_key("x.list[2]", u128::MAX).unwrap_err().to_string();
        assert!(e.contains("`x.list[2]`"), "{e}");
    }

    #[test]
    fn the_environment_raises_the_bound() {
        const R: Limit = Limit { env: "DGL_MAX_TEST_LIMIT_SET", ..L };
        std::env::set_var(R.env, "1_000");
        assert_eq!(R.value(), Ok(1000));
        assert!(R.check(1000u64).is_ok() && R.check(1001u64).is_err());
        std::env::set_var(R.env, "lots");
        let e = R.check(1u64).unwrap_err().to_string();
        assert!(e.contains("DGL_MAX_TEST_LIMIT_SET") && e.contains("`lots`"), "{e}");
        std::env::set_var(R.env, "0");
        assert!(R.value().is_err());
        std::env::remove_var(R.env);
    }
}

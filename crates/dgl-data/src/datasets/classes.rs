//! Class-list files: the label of a class is its position in the list.
//!
//! Two forms are accepted: one name per line, or (the official Kinetics-Sounds `class.txt`) names
//! separated by commas on one or more lines. Names are trimmed; with `underscores`, spaces inside
//! a name become `_` (how the official code maps class names to folder names). Empty names and
//! duplicates are errors naming the file and line.

use crate::limits::LimitExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// An ordered class list read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassList {
    pub path: PathBuf,
    pub names: Vec<String>,
    index: HashMap<String, u32>,
}

impl ClassList {
    /// Reads `path` (at most [`crate::limits::TEXT_BYTES`]).
    pub fn read(path: &Path, underscores: bool) -> Result<Self> {
        let bytes = super::fsutil::read_bounded(path, crate::limits::TEXT_BYTES)?;
        Self::parse(&bytes, path, underscores)
    }

    /// Parses in-memory text; `path` names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path, underscores: bool) -> Result<Self> {
        let text =
            std::str::from_utf8(bytes).map_err(|e| DataError::bad_file(path, format!("not valid UTF-8 ({e})")))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut names = Vec::new();
        let mut index = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split(',').collect();
            let n_parts = parts.len();
            for (k, part) in parts.into_iter().enumerate() {
                let mut name = part.trim().to_string();
                if name.is_empty() {
                    // A trailing comma at the end of the line is tolerated.
                    if k + 1 == n_parts && n_parts > 1 {
                        continue;
                    }
                    return Err(DataError::bad_line(path, line_no, "empty class name"));
                }
                if underscores {
                    name = name.split_whitespace().collect::<Vec<_>>().join("_");
                }
                if let Some(prev) = first_line.get(&name) {
                    return Err(DataError::bad_line(
                        path,
                        line_no,
                        format!("duplicate class {name:?} (first listed on line {prev})"),
                    ));
                }
                crate::limits::CLASSES
                    .check_usize(names.len() + 1, "the number of classes listed")
                    .map_err(|r| DataError::bad_line(path, line_no, r))?;
                first_line.insert(name.clone(), line_no);
                index.insert(name.clone(), names.len() as u32);
                names.push(name);
            }
        }
        if names.is_empty() {
            return Err(DataError::bad_file(path, "class list is empty"));
        }
        Ok(Self { path: path.to_path_buf(), names, index })
    }

    /// The label of `name`.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_and_line_forms() {
        let a = ClassList::parse(b"playing bass guitar, dog barking,\n", Path::new("c.txt"), true).unwrap();
        assert_eq!(a.names, vec!["playing_bass_guitar", "dog_barking"]);
        assert_eq!(a.get("dog_barking"), Some(1));
        let b = ClassList::parse(b"NEU\n\nHAP\n# comment\nSAD\n", Path::new("c.txt"), false).unwrap();
        assert_eq!(b.names, vec!["NEU", "HAP", "SAD"]);
        let e = ClassList::parse(b"a\nb\na\n", Path::new("c.txt"), false).unwrap_err().to_string();
        assert!(e.starts_with("c.txt:3:") && e.contains("duplicate"), "{e}");
        assert!(ClassList::parse(b"a,,b\n", Path::new("c.txt"), false).is_err());
        assert!(ClassList::parse(b"\n", Path::new("c.txt"), false).is_err());
    }
}

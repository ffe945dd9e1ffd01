//! A small, strict CSV reader for manifests (RFC 4180 subset).
//!
//! - UTF-8 only (an optional BOM at the start is skipped); `\n` or `\r\n` line ends.
//! - Fields are separated by `,`; a field may be quoted with `"` (a doubled `""` inside is a
//!   literal quote), which is how labels containing commas are written (VGGSound's
//!   `"male speech, man speaking"`). Spaces around an unquoted field are trimmed.
//! - A quoted field may not span lines; text after a closing quote (other than spaces and the
//!   next `,`) and a stray quote inside an unquoted field are errors.
//! - Empty lines are skipped (they carry no row); every other line is one record.
//!
//! Every error is a [`DataError::BadFile`] naming the file and the 1-based line.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// One CSV row with the 1-based line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// A parsed CSV file (the path is kept for error messages about its rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvFile {
    pub path: PathBuf,
    pub records: Vec<Record>,
}

impl CsvFile {
    /// Reads (at most [`crate::limits::TEXT_BYTES`]) and parses `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = super::fsutil::read_bounded(path, crate::limits::TEXT_BYTES)?;
        Self::parse(&bytes, path)
    }

    /// Parses in-memory bytes; `path` only names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut records = Vec::new();
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let text = std::str::from_utf8(raw)
                .map_err(|e| DataError::bad_line(path, line, format!("not valid UTF-8 ({e})")))?;
            if text.trim().is_empty() {
                continue;
            }
            if text.contains('\r') {
                return Err(DataError::bad_line(path, line, "stray carriage return inside a line"));
            }
            let fields = parse_line(text).map_err(|r| DataError::bad_line(path, line, r))?;
            records.push(Record { line, fields });
        }
        Ok(Self { path: path.to_path_buf(), records })
    }

    /// An error about `record` (names the file and the line).
    pub fn err(&self, record: &Record, reason: impl Into<String>) -> DataError {
        DataError::bad_line(&self.path, record.line, reason)
    }

    /// Checks that every record has exactly `n` fields (`what` describes them, e.g. `clip,EMO`).
    pub fn expect_columns(&self, n: usize, what: &str) -> Result<()> {
        for r in &self.records {
            if r.fields.len() != n {
                return Err(self.err(r, format!("expected {n} columns ({what}), found {}", r.fields.len())));
            }
            if let Some(k) = r.fields.iter().position(|f| f.is_empty()) {
                return Err(self.err(r, format!("column {} ({what}) is empty", k + 1)));
            }
        }
        Ok(())
    }
}

fn parse_line(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // Skip leading spaces of the field.
        while matches!(chars.peek(), Some(' ') | Some('\t')) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        closed = true;
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
            if !closed {
                return Err("unterminated quoted field (quoted fields may not span lines)".into());
            }
            while matches!(chars.peek(), Some(' ') | Some('\t')) {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a closing quote")),
            }
        } else {
            let mut ended = true;
            for c in chars.by_ref() {
                match c {
                    ',' => {
                        ended = false;
                        break;
                    }
                    '"' => return Err("a quote inside an unquoted field".into()),
                    c => field.push(c),
                }
            }
            fields.push(field.trim().to_string());
            if ended {
                return Ok(fields);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<CsvFile> {
        CsvFile::parse(s.as_bytes(), Path::new("m.csv"))
    }

    #[test]
    fn parses_plain_quoted_and_crlf() {
        let f = p("\u{feff}a,b\r\n\r\n\"x, y\",\"q\"\"z\"\n 1 , 2 \n").unwrap();
        assert_eq!(f.records.len(), 3);
        assert_eq!(f.records[0].fields, vec!["a", "b"]);
        assert_eq!(f.records[1].line, 3);
        assert_eq!(f.records[1].fields, vec!["x, y", "q\"z"]);
        assert_eq!(f.records[2].fields, vec!["1", "2"]);
        assert_eq!(p("a,\n").unwrap().records[0].fields, vec!["a", ""]);
    }

    #[test]
    fn rejects_malformed_lines_with_line_numbers() {
        let cases: [(&[u8], usize); 4] = [(b"a,b\n\"x,y\n", 2), (b"a\"b\n", 1), (b"\"a\"b\n", 1), (b"ok\n\xff\n", 2)];
        for (text, line) in cases {
            let e = CsvFile::parse(text, Path::new("m.csv")).unwrap_err().to_string();
            assert!(e.starts_with(&format!("m.csv:{line}:")), "{e}");
        }
        let f = p("a,b\nc\n").unwrap();
        let e = f.expect_columns(2, "x,y").unwrap_err().to_string();
        assert!(e.contains("m.csv:2") && e.contains("expected 2 columns"), "{e}");
        let e = p("a,\n").unwrap().expect_columns(2, "x,y").unwrap_err().to_string();
        assert!(e.contains("m.csv:1") && e.contains("empty"), "{e}");
    }
}

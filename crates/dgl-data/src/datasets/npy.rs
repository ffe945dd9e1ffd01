//! A strict `.npy` reader (and a small writer) for `f32` / `f64` little-endian C-order arrays.
//!
//! Accepted: magic `\x93NUMPY`, format version 1.0, 2.0 or 3.0, a header dict with exactly the
//! keys `descr` (`'<f4'` or `'<f8'`), `fortran_order` (`False`) and `shape` (a tuple of
//! non-negative integers), padded with spaces and ended by `\n`; then exactly
//! `prod(shape) × itemsize` bytes. Anything else — other dtypes, big-endian, Fortran order,
//! object arrays, a short or long data section, a shape whose size overflows — is a
//! [`DataError::BadFile`] naming the file. Values are returned as `f32` (`f64` is rounded); the
//! callers check finiteness.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Largest header accepted (numpy writes at most a few hundred bytes).
const MAX_HEADER: usize = 1 << 16;

/// Element type of an `.npy` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    F32,
    F64,
}

impl NpyDtype {
    pub fn size(self) -> usize {
        match self {
            NpyDtype::F32 => 4,
            NpyDtype::F64 => 8,
        }
    }
}

/// The header of an `.npy` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: NpyDtype,
    pub shape: Vec<usize>,
    /// Byte offset of the data.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (1 for a 0-d array).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Bytes the data section must have.
    pub fn data_len(&self) -> usize {
        self.numel() * self.dtype.size()
    }
}

/// A decoded array.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn bad(path: &Path, why: impl Into<String>) -> DataError {
    DataError::bad_file(path, format!("invalid .npy: {}", why.into()))
}

/// Parses the header at the start of `bytes` (which may hold only the header).
pub fn parse_npy_header(bytes: &[u8], path: &Path) -> Result<NpyHeader> {
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(path, "missing the \\x93NUMPY magic"));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad(path, "file ends inside the header length"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => return Err(bad(path, format!("unsupported format version {major}.{minor}"))),
    };
    if minor != 0 {
        return Err(bad(path, format!("unsupported format version {major}.{minor}")));
    }
    if hlen > MAX_HEADER {
        return Err(bad(path, format!("header of {hlen} bytes is too long")));
    }
    let end = start + hlen;
    let hbytes = bytes.get(start..end).ok_or_else(|| bad(path, "file ends inside the header"))?;
    let text = std::str::from_utf8(hbytes).map_err(|_| bad(path, "header is not text"))?;
    let text = text.strip_suffix('\n').ok_or_else(|| bad(path, "header does not end with a newline"))?;
    let (dtype, shape) = parse_dict(text.trim_end_matches(' ')).map_err(|why| bad(path, why))?;
    let numel =
        shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(path, "shape is too large"))?;
    numel.checked_mul(dtype.size()).ok_or_else(|| bad(path, "shape is too large"))?;
    Ok(NpyHeader { dtype, shape, data_offset: end })
}

/// Reads only the header of `path` and checks the file size against it.
pub fn read_npy_header(path: &Path) -> Result<NpyHeader> {
    let mut f = super::fsutil::open_regular(path)?;
    let size = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut buf = Vec::with_capacity(256);
    (&mut f).take(12 + MAX_HEADER as u64).read_to_end(&mut buf).map_err(|e| DataError::io(path, e))?;
    let h = parse_npy_header(&buf, path)?;
    let want = (h.data_offset + h.data_len()) as u64;
    if size != want {
        return Err(bad(
            path,
            format!(
                "data section has {} bytes, the header's shape {:?} needs {}",
                size.saturating_sub(h.data_offset as u64),
                h.shape,
                h.data_len()
            ),
        ));
    }
    Ok(h)
}

/// Parses a whole `.npy` file.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let h = parse_npy_header(bytes, path)?;
    let data = &bytes[h.data_offset..];
    if data.len() != h.data_len() {
        return Err(bad(
            path,
            format!("data section has {} bytes, the header's shape {:?} needs {}", data.len(), h.shape, h.data_len()),
        ));
    }
    let out: Vec<f32> = match h.dtype {
        NpyDtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        NpyDtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
    };
    Ok(NpyArray { shape: h.shape, data: out })
}

/// Reads a whole `.npy` file (refusing files over [`crate::limits::FILE_BYTES`]).
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = super::fsutil::read_bounded(path, crate::limits::FILE_BYTES)?;
    parse_npy(&bytes, path)
}

/// Encodes an `f32` array as a version-1.0 `.npy` file.
pub fn encode_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    // Pad so that the data starts on a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes an `f32` array as `.npy`.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    std::fs::write(path, encode_npy_f32(shape, data)).map_err(|e| DataError::io(path, e))
}

/// The header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_dict(s: &str) -> std::result::Result<(NpyDtype, Vec<usize>), String> {
    let mut p = P { s: s.as_bytes(), i: 0 };
    p.ws();
    p.eat(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
            break;
        }
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some(p.string()?),
            "fortran_order" if fortran.is_none() => fortran = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            "descr" | "fortran_order" | "shape" => return Err(format!("key {key:?} given twice")),
            _ => return Err(format!("unexpected header key {key:?}")),
        }
        p.ws();
        match p.peek() {
            Some(b',') => p.i += 1,
            Some(b'}') => {}
            _ => return Err("expected ',' or '}' in the header".into()),
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("text after the header dict".into());
    }
    let descr = descr.ok_or("header has no 'descr'")?;
    let fortran = fortran.ok_or("header has no 'fortran_order'")?;
    let shape = shape.ok_or("header has no 'shape'")?;
    let dtype = match descr.as_str() {
        "<f4" => NpyDtype::F32,
        "<f8" => NpyDtype::F64,
        d => return Err(format!("dtype {d:?} is not supported (only '<f4' and '<f8', little-endian float)")),
    };
    if fortran {
        return Err("Fortran-order arrays are not supported (save C-order)".into());
    }
    Ok((dtype, shape))
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ') | Some(b'\t')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} in the header", c as char))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err("expected a quoted string in the header".into()),
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let v = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| "bad string")?.to_string();
                self.i += 1;
                return Ok(v);
            }
            if c == b'\\' {
                return Err("escapes in header strings are not supported".into());
            }
            self.i += 1;
        }
        Err("unterminated string in the header".into())
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        if self.s[self.i..].starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err("expected True or False in the header".into())
        }
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.eat(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(b')') {
                self.i += 1;
                break;
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if start == self.i {
                return Err("expected a non-negative integer in the shape".into());
            }
            let d: usize = std::str::from_utf8(&self.s[start..self.i])
                .map_err(|_| "bad integer")?
                .parse()
                .map_err(|_| "shape dimension too large".to_string())?;
            dims.push(d);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    if dims.len() == 1 {
                        // `(3)` is an int in Python, not a tuple.
                        return Err("a 1-d shape must be written (n,)".into());
                    }
                }
                _ => return Err("expected ',' or ')' in the shape".into()),
            }
        }
        Ok(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_numpy_headers() {
        let p = Path::new("x.npy");
        for shape in [vec![], vec![3], vec![2, 3], vec![0, 4]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let b = encode_npy_f32(&shape, &data);
            assert_eq!(b.len() % 64, (4 * n) % 64);
            let a = parse_npy(&b, p).unwrap();
            assert_eq!((a.shape, a.data), (shape, data));
        }
        // What numpy 1.x writes for np.arange(3, dtype='<f8').
        let mut b = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }".to_vec();
        b.resize(10 + 117, b' ');
        b.push(b'\n');
        for v in [0.0f64, 1.0, 2.5] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(parse_npy(&b, p).unwrap().data, vec![0.0, 1.0, 2.5]);
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        let p = Path::new("bad.npy");
        let good = encode_npy_f32(&[2], &[1.0, 2.0]);
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            good[..8].to_vec(),
            b"NOTNUMPY".to_vec(),
        ];
        for (from, to) in
            [("'<f4'", "'>f4'"), ("'<f4'", "'<i4'"), ("False", "True "), ("(2,)", "(2) "), ("'shape'", "'shapo'")]
        {
            assert_eq!(from.len(), to.len());
            let mut h = good.clone();
            let at = h.windows(from.len()).position(|w| w == from.as_bytes()).unwrap();
            h[at..at + to.len()].copy_from_slice(to.as_bytes());
            cases.push(h);
        }
        for c in cases {
            let e = parse_npy(&c, p).unwrap_err().to_string();
            assert!(e.starts_with("bad.npy"), "{e}");
        }
    }
}

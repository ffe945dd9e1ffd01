//! MNIST's IDX format, plain or gzip-compressed, read strictly.
//!
//! Images: big-endian magic `0x00000803`, count, rows, cols, then `count × rows × cols` bytes.
//! Labels: magic `0x00000801`, count, then `count` bytes. The data must have exactly the announced
//! length; decompression stops at a size limit (a corrupt or hostile `.gz` cannot exhaust memory),
//! and the header of a plain file is checked against the file's length and the limit before the
//! data is read.

use crate::limits::LimitExt;
use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::limits;

/// An IDX image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count × rows × cols` bytes, row-major.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// Reads an IDX file, gunzipping it when it starts with the gzip magic (whatever its name), at
/// most [`limits::IDX_BYTES`] (decompressed). A plain file's header is checked first: the size it
/// announces must be the file's length and within the limit, so a lying header is refused before
/// the data is read.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let limit = limits::IDX_BYTES.bound().map_err(DataError::Invalid)?;
    let mut head = Vec::with_capacity(16);
    let mut f = super::fsutil::open_regular(path)?;
    let file_len = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    (&mut f).take(16).read_to_end(&mut head).map_err(|e| DataError::io(path, e))?;
    if !head.starts_with(&[0x1f, 0x8b]) {
        check_plain_header(&head, file_len, path)?;
    }
    let raw = super::fsutil::read_bounded(path, limits::IDX_BYTES)?;
    maybe_gunzip(raw, path, limit)
}

/// The size a plain IDX header announces (`None` when the magic is not an IDX image/label one:
/// the parser then names the problem) against the file length and [`limits::IDX_BYTES`].
fn check_plain_header(head: &[u8], file_len: u64, path: &Path) -> Result<()> {
    let dim = |at: usize| head.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64);
    let need = match dim(0) {
        Some(0x0803) => match (dim(4), dim(8), dim(12)) {
            (Some(n), Some(r), Some(c)) => {
                n.checked_mul(r).and_then(|v| v.checked_mul(c)).map(|v| v.saturating_add(16))
            }
            _ => return Ok(()),
        },
        Some(0x0801) => dim(4).map(|n| n + 8),
        _ => return Ok(()),
    };
    let Some(need) = need else {
        return Err(DataError::bad_file(path, "IDX header announces more bytes than a 64-bit size can hold"));
    };
    limits::IDX_BYTES
        .check_label(need, "size announced by the IDX header")
        .map_err(|r| DataError::bad_file(path, r))?;
    if need != file_len {
        return Err(DataError::bad_file(
            path,
            format!("IDX header announces {need} bytes (header + data) but the file has {file_len}"),
        ));
    }
    Ok(())
}

/// Gunzips `raw` when it starts with the gzip magic (at most `limit` bytes out); `path` names it
/// in errors.
pub fn maybe_gunzip(raw: Vec<u8>, path: &Path, limit: u64) -> Result<Vec<u8>> {
    if raw.is_empty() {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let dec = flate2::read::MultiGzDecoder::new(&raw[..]);
        dec.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| DataError::bad_file(path, format!("corrupt gzip data: {e}")))?;
        if out.len() as u64 > limit {
            return Err(DataError::bad_file(path, format!("decompresses to more than {limit} bytes")));
        }
        Ok(out)
    } else {
        if raw.len() as u64 > limit {
            return Err(DataError::bad_file(path, format!("file is over {limit} bytes")));
        }
        Ok(raw)
    }
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Parses an IDX image file (bytes already decompressed).
pub fn parse_idx_images(b: &[u8], path: &Path) -> Result<IdxImages> {
    if b.len() < 16 {
        return Err(DataError::bad_file(path, "IDX image file shorter than its 16-byte header"));
    }
    let magic = be32(b, 0);
    if magic != 0x0803 {
        return Err(DataError::bad_file(
            path,
            format!("not an IDX image file (magic {magic:#010x}, expected 0x00000803)"),
        ));
    }
    let (count, rows, cols) = (be32(b, 4), be32(b, 8), be32(b, 12));
    if rows == 0 || cols == 0 {
        return Err(DataError::bad_file(path, format!("images of {rows} × {cols} pixels")));
    }
    let need = count.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    if need != Some(b.len() - 16) {
        return Err(DataError::bad_file(
            path,
            format!("header announces {count} images of {rows} × {cols} but the data has {} bytes", b.len() - 16),
        ));
    }
    Ok(IdxImages { count, rows, cols, pixels: b[16..].to_vec() })
}

/// Parses an IDX label file; labels must be `< num_classes`.
pub fn parse_idx_labels(b: &[u8], path: &Path, num_classes: u8) -> Result<Vec<u8>> {
    if b.len() < 8 {
        return Err(DataError::bad_file(path, "IDX label file shorter than its 8-byte header"));
    }
    let magic = be32(b, 0);
    if magic != 0x0801 {
        return Err(DataError::bad_file(
            path,
            format!("not an IDX label file (magic {magic:#010x}, expected 0x00000801)"),
        ));
    }
    let count = be32(b, 4);
    if count != b.len() - 8 {
        return Err(DataError::bad_file(
            path,
            format!("header announces {count} labels but the data has {} bytes", b.len() - 8),
        ));
    }
    let labels = b[8..].to_vec();
    if let Some(i) = labels.iter().position(|&l| l >= num_classes) {
        return Err(DataError::bad_file(path, format!("label {} of item {i} is not below {num_classes}", labels[i])));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let p = Path::new("x-idx3-ubyte");
        let mut b = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend(0..12u8);
        let im = parse_idx_images(&b, p).unwrap();
        assert_eq!((im.count, im.rows, im.cols), (2, 2, 3));
        assert_eq!(im.image(1), &[6, 7, 8, 9, 10, 11]);
        assert!(parse_idx_images(&b[..27], p).unwrap_err().to_string().starts_with("x-idx3-ubyte"));
        let l = vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 9, 0];
        assert_eq!(parse_idx_labels(&l, p, 10).unwrap(), vec![1, 9, 0]);
        assert!(parse_idx_labels(&l, p, 9).is_err());
        assert!(parse_idx_labels(&l[..10], p, 10).is_err());
        assert!(parse_idx_labels(&b, p, 10).is_err());
    }
}

//! Tensor files: a strict safetensors header reader (so that shapes can be checked without
//! reading the data, and single samples read from large cache shards), whole-file tensor reading
//! for `.safetensors` and `.npy`, and a safetensors writer.
//!
//! Every failure is a [`DataError::BadFile`] (or `Io`) naming the file.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use super::npy;
use crate::error::{DataError, Result};

/// Largest safetensors header accepted (the format's own limit is 100 MB).
pub const MAX_HEADER: usize = 100 << 20;

/// `(name, shape, values)` of a tensor read from a file.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Element types read (converted to `f32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileDtype {
    F32,
    F64,
    U32,
}

impl FileDtype {
    pub fn size(self) -> usize {
        match self {
            FileDtype::F32 | FileDtype::U32 => 4,
            FileDtype::F64 => 8,
        }
    }
}

/// One tensor of a safetensors header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: FileDtype,
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub start: u64,
    pub end: u64,
}

fn bad(path: &Path, why: impl Into<String>) -> DataError {
    DataError::bad_file(path, format!("invalid safetensors: {}", why.into()))
}

/// Parses a safetensors header from its JSON text; `data_start` is `8 + header length` and
/// `file_len` the whole file's size (the data must end exactly at the end of the file).
fn parse_header(
    json: &[u8],
    data_start: u64,
    file_len: u64,
    path: &Path,
) -> Result<(Vec<TensorInfo>, HashMap<String, String>)> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad(path, format!("header is not JSON ({e})")))?;
    let obj = v.as_object().ok_or_else(|| bad(path, "header is not a JSON object"))?;
    let mut meta = HashMap::new();
    let mut tensors = Vec::new();
    for (name, t) in obj {
        if name == "__metadata__" {
            let m = t.as_object().ok_or_else(|| bad(path, "__metadata__ is not an object"))?;
            for (k, v) in m {
                let s = v.as_str().ok_or_else(|| bad(path, format!("metadata {k:?} is not a string")))?;
                meta.insert(k.clone(), s.to_string());
            }
            continue;
        }
        let t = t.as_object().ok_or_else(|| bad(path, format!("tensor {name:?} is not an object")))?;
        let dtype = match t.get("dtype").and_then(|d| d.as_str()) {
            Some("F32") => FileDtype::F32,
            Some("F64") => FileDtype::F64,
            Some("U32") => FileDtype::U32,
            Some(d) => {
                return Err(bad(
                    path,
                    format!("tensor {name:?} has dtype {d}; only F32, F64 (and U32 labels) are read"),
                ))
            }
            None => return Err(bad(path, format!("tensor {name:?} has no dtype"))),
        };
        let shape: Vec<usize> = t
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(path, format!("tensor {name:?} has no shape")))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(path, format!("tensor {name:?} has a bad shape")))?;
        let off = t
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
            .ok_or_else(|| bad(path, format!("tensor {name:?} has no valid data_offsets")))?;
        let numel =
            shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or_else(|| bad(path, "shape overflows"))?;
        let nbytes = numel.checked_mul(dtype.size() as u64).ok_or_else(|| bad(path, "shape overflows"))?;
        if off.1 < off.0 || off.1 - off.0 != nbytes {
            return Err(bad(
                path,
                format!("tensor {name:?}: data_offsets {off:?} do not match shape {shape:?} of {dtype:?}"),
            ));
        }
        tensors.push(TensorInfo { name: name.clone(), dtype, shape, start: off.0, end: off.1 });
    }
    // Offsets must tile [0, total) without gaps or overlaps.
    let mut sorted: Vec<&TensorInfo> = tensors.iter().collect();
    sorted.sort_by_key(|t| (t.start, t.end));
    let mut at = 0u64;
    for t in &sorted {
        if t.start != at {
            return Err(bad(
                path,
                format!("tensor {:?} starts at {} instead of {at} (gap or overlap)", t.name, t.start),
            ));
        }
        at = t.end;
    }
    if data_start.checked_add(at) != Some(file_len) {
        return Err(bad(path, format!("file has {file_len} bytes but the header describes {}", data_start + at)));
    }
    for t in &mut tensors {
        t.start += data_start;
        t.end += data_start;
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tensors, meta))
}

/// Reads and checks the header of a safetensors file (tensors sorted by name; the metadata).
pub fn safetensors_header(path: &Path) -> Result<(Vec<TensorInfo>, HashMap<String, String>)> {
    let mut f = super::fsutil::open_regular(path)?;
    let len = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len == 0 {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    if len < 8 {
        return Err(bad(path, "shorter than the 8-byte header length"));
    }
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| DataError::io(path, e))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER as u64 || n + 8 > len {
        return Err(bad(path, format!("header length {n} does not fit the file of {len} bytes")));
    }
    let mut json = vec![0u8; n as usize];
    f.read_exact(&mut json).map_err(|e| DataError::io(path, e))?;
    parse_header(&json, 8 + n, len, path)
}

/// Parses a whole in-memory safetensors file into `(name, shape, values as f32)`, sorted by name.
pub fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<Vec<NamedTensor>> {
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    if bytes.len() < 8 {
        return Err(bad(path, "shorter than the 8-byte header length"));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER as u64 || n + 8 > bytes.len() as u64 {
        return Err(bad(path, format!("header length {n} does not fit the file of {} bytes", bytes.len())));
    }
    let (infos, _) = parse_header(&bytes[8..8 + n as usize], 8 + n, bytes.len() as u64, path)?;
    Ok(infos
        .into_iter()
        .map(|t| {
            let data = decode(&bytes[t.start as usize..t.end as usize], t.dtype);
            (t.name, t.shape, data)
        })
        .collect())
}

/// Little-endian bytes → f32.
pub fn decode(b: &[u8], dtype: FileDtype) -> Vec<f32> {
    match dtype {
        FileDtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        FileDtype::U32 => b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        FileDtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
    }
}

/// Reads `len` bytes at `offset` of `path`.
pub fn read_range(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut f = super::fsutil::open_regular(path)?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| DataError::io(path, e))?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).map_err(|e| DataError::io(path, e))?;
    Ok(buf)
}

/// What a feature file holds: `(tensor name, shape)`; `.npy` files hold one tensor named `""`.
pub fn probe_feature_file(path: &Path) -> Result<Vec<(String, Vec<usize>)>> {
    if is_npy(path) {
        let h = npy::read_npy_header(path)?;
        Ok(vec![(String::new(), h.shape)])
    } else {
        Ok(safetensors_header(path)?.0.into_iter().map(|t| (t.name, t.shape)).collect())
    }
}

/// Reads a feature file: `(tensor name, shape, values)` sorted by name.
pub fn read_feature_file(path: &Path) -> Result<Vec<NamedTensor>> {
    let bytes = super::fsutil::read_bounded(path, crate::limits::FILE_BYTES)?;
    if is_npy(path) {
        let a = npy::parse_npy(&bytes, path)?;
        Ok(vec![(String::new(), a.shape, a.data)])
    } else {
        parse_safetensors(&bytes, path)
    }
}

/// Errors on the first NaN/Inf of `values`, naming the file and the tensor.
pub fn check_finite(values: &[f32], path: &Path, tensor: &str) -> Result<()> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        let what = if tensor.is_empty() { String::new() } else { format!("tensor {tensor:?}: ") };
        return Err(DataError::bad_file(path, format!("{what}non-finite value {} at flat index {i}", values[i])));
    }
    Ok(())
}

fn is_npy(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// A tensor to write: name, shape, f32 or u32 data.
pub enum WriteTensor<'a> {
    F32(&'a str, Vec<usize>, &'a [f32]),
    U32(&'a str, Vec<usize>, &'a [u32]),
}

/// Writes tensors as a safetensors file (with optional string metadata).
pub fn write_safetensors(
    path: &Path,
    tensors: &[WriteTensor<'_>],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| match t {
            WriteTensor::F32(n, s, d) => {
                (n.to_string(), Dtype::F32, s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            WriteTensor::U32(n, s, d) => {
                (n.to_string(), Dtype::U32, s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, dt, s, b)| {
            TensorView::new(*dt, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| DataError::bad_file(path, format!("cannot build tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize_to_file(views, metadata, path)
        .map_err(|e| DataError::bad_file(path, format!("cannot write safetensors: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let dir = std::env::temp_dir().join(format!("dgl-tensorfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.safetensors");
        write_safetensors(
            &p,
            &[WriteTensor::F32("x", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]), WriteTensor::U32("y", vec![1], &[7])],
            None,
        )
        .unwrap();
        let (h, _) = safetensors_header(&p).unwrap();
        assert_eq!(h.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["x", "y"]);
        let all = read_feature_file(&p).unwrap();
        assert_eq!(all[0].2, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(all[1].2, vec![7.0]);
        let bytes = std::fs::read(&p).unwrap();
        let b = read_range(&p, h[0].start, 8).unwrap();
        assert_eq!(decode(&b, FileDtype::F32), vec![1.0, 2.0]);
        // Truncated / extended files are rejected.
        assert!(parse_safetensors(&bytes[..bytes.len() - 1], &p).is_err());
        assert!(parse_safetensors(&[bytes.clone(), vec![0]].concat(), &p).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}

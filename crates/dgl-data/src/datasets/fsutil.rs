//! File-system helpers: sorted folder listings, existence checks and bounded reads of regular
//! files, whose errors name the path.

use crate::limits::LimitExt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::limits::{self, Limit};

/// One folder entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The entries of `dir` sorted by name, hidden entries (`.name`) left out. A missing folder is an
/// [`DataError::Io`] (`NotFound`) naming it; a non-UTF-8 name is a [`DataError::BadFile`].
pub fn list_dir(dir: &Path) -> Result<Vec<Entry>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| DataError::io(dir, e))?;
        let path = ent.path();
        let name =
            ent.file_name().into_string().map_err(|_| DataError::bad_file(&path, "file name is not valid UTF-8"))?;
        if name.starts_with('.') {
            continue;
        }
        // Follow symlinks: a link to a folder is a folder. A dangling link counts as a file (its
        // item is then reported missing when checked).
        let is_dir = std::fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        out.push(Entry { name, path, is_dir });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `name` ends in `.jpg`, `.jpeg` or `.png` (any case).
pub fn is_image_name(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    l.ends_with(".jpg") || l.ends_with(".jpeg") || l.ends_with(".png")
}

/// The frame files (JPEG/PNG) of a frame folder, sorted by name. A missing folder, or one without
/// frames, is a `NotFound` [`DataError::Io`] naming the folder (a missing item); a zero-length,
/// oversize or non-regular frame is a [`DataError::BadFile`] naming it (see [`check_file`]).
pub fn list_frames(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = list_dir(dir)?;
    let frames: Vec<PathBuf> =
        entries.into_iter().filter(|e| !e.is_dir && is_image_name(&e.name)).map(|e| e.path).collect();
    if frames.is_empty() {
        return Err(not_found(dir, "no frames (*.jpg, *.jpeg, *.png) in this folder"));
    }
    for f in &frames {
        check_file(f)?;
    }
    Ok(frames)
}

/// Checks that `path` is a non-empty regular file of at most [`limits::FILE_BYTES`] (without
/// opening it: a FIFO or device is refused, not read).
pub fn check_file(path: &Path) -> Result<()> {
    let md = regular_metadata(path)?;
    if md.len() == 0 {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    limits::FILE_BYTES.check_label(md.len(), "file size").map_err(|r| DataError::bad_file(path, r))
}

/// The metadata of `path` (links followed), refusing anything but a regular file: a folder, a
/// FIFO, a socket or a device (`/dev/zero`) would hang or grow without bound when read.
pub fn regular_metadata(path: &Path) -> Result<std::fs::Metadata> {
    let md = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if md.is_dir() {
        return Err(DataError::bad_file(path, "is a folder, expected a file"));
    }
    if !md.is_file() {
        return Err(DataError::bad_file(
            path,
            "is not a regular file (a FIFO, socket or device?); refusing to read it",
        ));
    }
    Ok(md)
}

/// Opens a regular file for reading (see [`regular_metadata`]).
pub fn open_regular(path: &Path) -> Result<std::fs::File> {
    regular_metadata(path)?;
    std::fs::File::open(path).map_err(|e| DataError::io(path, e))
}

/// A `NotFound` I/O error on `path` with a custom message (counts as a missing item).
pub fn not_found(path: &Path, msg: &str) -> DataError {
    DataError::io(path, io::Error::new(io::ErrorKind::NotFound, msg.to_string()))
}

/// Reads a regular file whole, refusing one over `limit` bytes before reading it (from its size)
/// and, should it grow while being read, after `limit + 1` bytes (a bounded reader). The error
/// names the file, its size, the limit and the environment variable that raises it.
pub fn read_bounded(path: &Path, limit: Limit) -> Result<Vec<u8>> {
    use std::io::Read;
    let max = limit.bound().map_err(DataError::Invalid)?;
    let md = regular_metadata(path)?;
    limit.check_label(md.len(), "file size").map_err(|r| DataError::bad_file(path, r))?;
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::with_capacity(md.len() as usize);
    f.take(max + 1).read_to_end(&mut out).map_err(|e| DataError::io(path, e))?;
    limit.check_label(out.len() as u64, "file size").map_err(|r| DataError::bad_file(path, r))?;
    Ok(out)
}

//! File-system helpers: sorted folder listings and existence checks whose errors name the path.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

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
/// frames, is a `NotFound` [`DataError::Io`] naming the folder (a missing item); a zero-length
/// frame is a [`DataError::BadFile`] naming it.
pub fn list_frames(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = list_dir(dir)?;
    let frames: Vec<PathBuf> =
        entries.into_iter().filter(|e| !e.is_dir && is_image_name(&e.name)).map(|e| e.path).collect();
    if frames.is_empty() {
        return Err(not_found(dir, "no frames (*.jpg, *.jpeg, *.png) in this folder"));
    }
    for f in &frames {
        let md = std::fs::metadata(f).map_err(|e| DataError::io(f, e))?;
        if md.len() == 0 {
            return Err(DataError::bad_file(f, "empty file (0 bytes)"));
        }
    }
    Ok(frames)
}

/// Checks that `path` is a non-empty regular file.
pub fn check_file(path: &Path) -> Result<()> {
    let md = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if md.is_dir() {
        return Err(DataError::bad_file(path, "is a folder, expected a file"));
    }
    if md.len() == 0 {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    Ok(())
}

/// A `NotFound` I/O error on `path` with a custom message (counts as a missing item).
pub fn not_found(path: &Path, msg: &str) -> DataError {
    DataError::io(path, io::Error::new(io::ErrorKind::NotFound, msg.to_string()))
}

/// Reads a file fully, refusing files over `limit` bytes (a corrupt header could otherwise ask
/// for gigabytes).
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let md = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if md.is_dir() {
        return Err(DataError::bad_file(path, "is a folder, expected a file"));
    }
    if md.len() > limit {
        return Err(DataError::bad_file(path, format!("file of {} bytes is over the {limit}-byte limit", md.len())));
    }
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

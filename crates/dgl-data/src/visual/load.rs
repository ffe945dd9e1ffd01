//! Reading frames (JPEG / PNG) into 8-bit RGB.

use std::path::Path;

use image::{ImageReader, RgbImage};

use crate::error::{DataError, Result};

/// Decodes an image file (format from its content) into RGB8. A missing/unreadable file is
/// [`DataError::Io`]; an empty, truncated, corrupt or unsupported file is [`DataError::BadFile`].
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// Decodes an in-memory image; `path` only names it in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::bad_file(path, format!("cannot read image: {e}")))?;
    if reader.format().is_none() {
        return Err(DataError::bad_file(path, "not a recognised image format (expected JPEG or PNG)"));
    }
    let img = reader.decode().map_err(|e| DataError::bad_file(path, format!("corrupt or unsupported image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(DataError::bad_file(path, "image with zero width or height"));
    }
    Ok(img.to_rgb8())
}

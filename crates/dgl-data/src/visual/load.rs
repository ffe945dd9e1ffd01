//! Reading frames (JPEG / PNG) into 8-bit RGB.

use crate::limits::LimitExt;
use std::path::Path;

use image::{ImageReader, RgbImage};

use crate::error::{DataError, Result};
use crate::limits;

/// Decodes an image file (format from its content) into RGB8. A missing/unreadable file is
/// [`DataError::Io`]; an empty, truncated, corrupt, unsupported or oversize file (over
/// [`limits::FILE_BYTES`], or whose header announces more than [`limits::IMAGE_PIXELS`]) is
/// [`DataError::BadFile`].
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = crate::datasets::fsutil::read_bounded(path, crate::limits::FILE_BYTES)?;
    decode_rgb(&bytes, path)
}

/// Decodes an in-memory image; `path` only names it in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    check_dimensions(image_dimensions(bytes, path)?, path)?;
    let img = reader(std::io::Cursor::new(bytes), path)?
        .decode()
        .map_err(|e| DataError::bad_file(path, format!("corrupt or unsupported image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(DataError::bad_file(path, "image with zero width or height"));
    }
    Ok(img.to_rgb8())
}

/// `(width, height)` from an in-memory image's header (nothing is decoded); `path` names it in
/// errors.
pub fn image_dimensions(bytes: &[u8], path: &Path) -> Result<(u32, u32)> {
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    reader(std::io::Cursor::new(bytes), path)?
        .into_dimensions()
        .map_err(|e| DataError::bad_file(path, format!("corrupt or unsupported image header: {e}")))
}

/// Checks an image file from its header alone (what the loaders do for every frame when a
/// dataset is opened): a non-empty regular file of at most [`limits::FILE_BYTES`], a JPEG/PNG
/// header that reads, non-zero dimensions of at most [`limits::IMAGE_PIXELS`].
pub fn check_image_file(path: &Path) -> Result<()> {
    crate::datasets::fsutil::check_file(path)?;
    let f = crate::datasets::fsutil::open_regular(path)?;
    let dims = reader(std::io::BufReader::new(f), path)?
        .into_dimensions()
        .map_err(|e| DataError::bad_file(path, format!("corrupt or unsupported image header: {e}")))?;
    check_dimensions(dims, path)
}

/// Non-zero width and height, at most [`limits::IMAGE_PIXELS`] pixels.
fn check_dimensions((w, h): (u32, u32), path: &Path) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(DataError::bad_file(path, "image with zero width or height"));
    }
    limits::IMAGE_PIXELS
        .check_label(w as u64 * h as u64, &format!("the image ({w} × {h} in its header)"))
        .map_err(|r| DataError::bad_file(path, r))
}

/// An image reader with its format guessed from the content (JPEG or PNG).
fn reader<R: std::io::BufRead + std::io::Seek>(r: R, path: &Path) -> Result<ImageReader<R>> {
    let reader = ImageReader::new(r)
        .with_guessed_format()
        .map_err(|e| DataError::bad_file(path, format!("cannot read image: {e}")))?;
    if reader.format().is_none() {
        return Err(DataError::bad_file(path, "not a recognised image format (expected JPEG or PNG)"));
    }
    Ok(reader)
}

//! Visual frames: loading ([`load`]), Pillow-exact bilinear resizing ([`resize`]), torchvision
//! transforms ([`transform`]), frame choice ([`frames`]) and ESANet's joint RGB-D transforms
//! ([`rgbd`]).

pub mod frames;
pub mod load;
pub mod resize;
pub mod rgbd;
pub mod transform;

use std::path::Path;

use dgl_core::rng::Rng;

pub use frames::{choose_frames, frame_indices};
pub use load::{check_image_file, decode_rgb, image_dimensions, load_rgb};
pub use resize::resize_bilinear;
pub use transform::{crop, random_resized_crop_params, stack_frames, to_normalized_chw, FrameTransform};

use crate::error::Result;

/// ImageNet channel means (RGB) used by `transforms.Normalize`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Loads and transforms frames into `[3, T, size, size]`: each frame gets its own random crop and
/// flip in training (`rng = Some`, as the official Kinetics-Sounds loader), the eval transform
/// otherwise.
pub fn load_frames<P: AsRef<Path>>(
    paths: &[P],
    transform: &FrameTransform,
    mut rng: Option<&mut Rng>,
) -> Result<Vec<f32>> {
    let frames = paths
        .iter()
        .map(|p| {
            let img = load_rgb(p.as_ref())?;
            Ok(match rng.as_deref_mut() {
                Some(r) => transform.train(&img, r),
                None => transform.eval(&img),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(stack_frames(&frames))
}

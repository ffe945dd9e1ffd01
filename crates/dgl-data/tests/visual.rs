//! Frame loading and transforms on files; corrupt images become `BadFile` errors naming the file.

use std::path::{Path, PathBuf};

use dgl_core::rng::Rng;
use dgl_data::visual::{choose_frames, load_frames, load_rgb, FrameTransform};
use dgl_data::DataError;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dgl-data-visual-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn corrupt_images_are_bad_files() {
    let png = std::fs::read(fixtures().join("image.png")).unwrap();
    let mut jpeg = Vec::new();
    image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.jpg", vec![]),
        ("text.jpg", b"not an image".to_vec()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("truncated.jpg", jpeg[..jpeg.len() / 2].to_vec()),
        ("header_only.png", png[..16].to_vec()),
    ];
    for (name, bytes) in cases {
        let p = tmp(name, &bytes);
        match load_rgb(&p) {
            Err(e @ DataError::BadFile { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(name), "{msg}");
                println!("{msg}");
            }
            other => panic!("{name}: expected BadFile, got {other:?}"),
        }
    }
    assert!(matches!(load_rgb(Path::new("/nonexistent/frame.jpg")), Err(DataError::Io { .. })));
    assert_eq!(load_rgb(&tmp("ok.jpg", &jpeg)).unwrap().dimensions(), (16, 16));
}

#[test]
fn frames_to_model_layout() {
    let p = fixtures().join("image.png");
    let t = FrameTransform::default();
    let eval = load_frames(&[&p, &p, &p], &t, None).unwrap();
    assert_eq!(eval.len(), 3 * 3 * 224 * 224);
    let plane = 224 * 224;
    // Channel-major [3, T, H, W]: the three identical frames repeat inside each channel.
    assert_eq!(eval[..plane], eval[plane..2 * plane]);
    let mut rng = Rng::new(11);
    let train = load_frames(&[&p, &p], &t, Some(&mut rng)).unwrap();
    assert_eq!(train.len(), 3 * 2 * plane);
    assert_ne!(train[..plane], train[plane..2 * plane], "independent random crops per frame");
    let names: Vec<String> = (0..7).rev().map(|i| format!("{i:05}.jpg")).collect();
    assert_eq!(choose_frames(&names, 1, None), vec!["00003.jpg".to_string()]);
}

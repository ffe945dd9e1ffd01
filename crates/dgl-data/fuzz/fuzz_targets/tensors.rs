//! Tensor files: the strict .npy parser, safetensors, MNIST IDX (optionally gzip).
#![no_main]

use std::path::Path;

use dgl_data::datasets::idx::{maybe_gunzip, parse_idx_images, parse_idx_labels};
use dgl_data::datasets::npy::parse_npy;
use dgl_data::datasets::tensorfile::parse_safetensors;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.bin");
    let check = |r: Result<(), dgl_data::DataError>| {
        if let Err(e) = r {
            assert!(e.to_string().starts_with("fuzz.bin"), "{e}");
        }
    };
    check(parse_npy(data, p).map(|a| assert_eq!(a.data.len(), a.shape.iter().product::<usize>())));
    check(parse_safetensors(data, p).map(|_| ()));
    check(parse_idx_images(data, p).map(|_| ()));
    check(parse_idx_labels(data, p, 10).map(|_| ()));
    check(maybe_gunzip(data.to_vec(), p, 1 << 20).and_then(|b| parse_idx_labels(&b, p, 10)).map(|_| ()));
});

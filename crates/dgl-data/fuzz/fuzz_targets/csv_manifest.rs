//! CSV manifests: the strict CSV reader, class lists and the generic manifest parser.
#![no_main]

use std::path::Path;

use dgl_data::datasets::classes::ClassList;
use dgl_data::datasets::csv::CsvFile;
use dgl_data::datasets::generic::parse_manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.csv");
    if let Err(e) = CsvFile::parse(data, path) {
        assert!(e.to_string().starts_with("fuzz.csv:"), "{e}");
    }
    let classes = ClassList::parse(data, Path::new("classes.txt"), true).ok();
    for c in [None, classes.as_ref()] {
        for k in [None, Some(3)] {
            if let Err(e) = parse_manifest(data, path, c, k) {
                assert!(e.to_string().starts_with("fuzz.csv"), "{e}");
            }
        }
    }
});

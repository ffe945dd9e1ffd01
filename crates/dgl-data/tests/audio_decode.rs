//! Audio decoding: every PCM WAV flavour, several channels, FLAC/Ogg/MP3, and every broken file
//! becoming a `BadFile`/`Io` error that names the file.

use std::path::{Path, PathBuf};

use dgl_data::audio::{decode_file, load};
use dgl_data::DataError;

fn tmp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("dgl-data-audio-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A RIFF WAV: `format_tag` 1 (PCM), 3 (float) or 0xFFFE (extensible, PCM sub-format).
fn wav_bytes(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&format_tag.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * block as u32).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    if format_tag == 0xFFFE {
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes()); // valid bits
        let mask: u32 = (1u32 << channels) - 1;
        fmt.extend_from_slice(&mask.to_le_bytes());
        // KSDATAFORMAT_SUBTYPE_PCM {00000001-0000-0010-8000-00aa00389b71}
        fmt.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + fmt.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp_dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol, "sample {i}: {a} vs {b}");
    }
}

#[test]
fn pcm_wav_flavours() {
    // 16-bit mono.
    let v16: [i16; 5] = [0, 16384, -16384, 32767, -32768];
    let data: Vec<u8> = v16.iter().flat_map(|s| s.to_le_bytes()).collect();
    let d = decode_file(&write("i16.wav", &wav_bytes(1, 1, 8000, 16, &data))).unwrap();
    assert_eq!((d.sample_rate, d.channels), (8000, 1));
    assert_close(&d.samples, &v16.map(|s| s as f32 / 32768.0), 0.0);

    // 8-bit unsigned.
    let v8: [u8; 4] = [128, 255, 0, 64];
    let d = decode_file(&write("u8.wav", &wav_bytes(1, 1, 11025, 8, &v8))).unwrap();
    assert_eq!(d.sample_rate, 11025);
    assert_close(&d.samples, &v8.map(|u| (u as f32 - 128.0) / 128.0), 1e-7);

    // 24-bit.
    let v24: [i32; 4] = [0, 4_194_304, -8_388_608, 8_388_607];
    let data: Vec<u8> = v24.iter().flat_map(|s| s.to_le_bytes()[..3].to_vec()).collect();
    let d = decode_file(&write("i24.wav", &wav_bytes(1, 1, 16000, 24, &data))).unwrap();
    assert_close(&d.samples, &v24.map(|s| s as f32 / 8_388_608.0), 1e-7);

    // 32-bit int.
    let v32: [i32; 3] = [0, 1 << 30, i32::MIN];
    let data: Vec<u8> = v32.iter().flat_map(|s| s.to_le_bytes()).collect();
    let d = decode_file(&write("i32.wav", &wav_bytes(1, 1, 16000, 32, &data))).unwrap();
    assert_close(&d.samples, &v32.map(|s| s as f32 / 2_147_483_648.0), 1e-7);

    // 32-bit float.
    let vf: [f32; 3] = [0.25, -0.75, 1.0];
    let data: Vec<u8> = vf.iter().flat_map(|s| s.to_le_bytes()).collect();
    let d = decode_file(&write("f32.wav", &wav_bytes(3, 1, 22050, 32, &data))).unwrap();
    assert_close(&d.samples, &vf, 0.0);

    // Stereo 16-bit → average.
    let st: [i16; 6] = [16384, 0, -16384, -16384, 8192, 24576];
    let data: Vec<u8> = st.iter().flat_map(|s| s.to_le_bytes()).collect();
    let d = decode_file(&write("stereo.wav", &wav_bytes(1, 2, 8000, 16, &data))).unwrap();
    assert_eq!(d.channels, 2);
    assert_close(&d.samples, &[0.25, -0.5, 0.5], 1e-7);

    // WAVE_FORMAT_EXTENSIBLE, 3 channels, 24-bit.
    let v: [i32; 6] = [8_388_607, 0, -8_388_608, 3, 3, 3];
    let data: Vec<u8> = v.iter().flat_map(|s| s.to_le_bytes()[..3].to_vec()).collect();
    let d = decode_file(&write("ext.wav", &wav_bytes(0xFFFE, 3, 48000, 24, &data))).unwrap();
    assert_eq!((d.channels, d.sample_rate), (3, 48000));
    assert_close(&d.samples, &[(8_388_607.0 - 8_388_608.0) / 3.0 / 8_388_608.0, 3.0 / 8_388_608.0], 1e-7);
}

/// A float32 .npy vector.
fn read_npy_vec(name: &str) -> Vec<f32> {
    let b = std::fs::read(fixtures().join(name)).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn compressed_codecs() {
    let want = read_npy_vec("codec_tone.ref.npy");
    let flac = decode_file(&fixtures().join("codec_tone.flac")).unwrap();
    assert_eq!((flac.sample_rate, flac.channels), (8000, 2));
    assert_eq!(flac.samples, want, "FLAC must be bit-exact with soundfile");
    for ext in ["ogg", "mp3"] {
        let d = decode_file(&fixtures().join(format!("codec_tone.{ext}"))).unwrap();
        assert_eq!((d.sample_rate, d.channels), (8000, 2), "{ext}");
        assert!(d.samples.len() >= 2000, "{ext}: {}", d.samples.len());
        // Mono average of 0.5 and 0.25 sines: amplitude 0.375, RMS ≈ 0.265 (lossy, encoder padding).
        let mid = &d.samples[500..1500];
        let rms = (mid.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
        let sf = read_npy_vec(&format!("codec_tone.{ext}.ref.npy"));
        assert_eq!(d.samples.len(), sf.len(), "{ext}: length differs from libsndfile's");
        let diff = d.samples.iter().zip(&sf).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("{ext}: {} samples, rms {rms:.3}, max abs difference to libsndfile {diff:.2e}", d.samples.len());
        assert!(diff < 1e-5, "{ext}: {diff}");
        assert!((rms - 0.265).abs() < 0.05, "{ext}: rms {rms}");
        // Dominant frequency 440 Hz: correlate with quadrature sines.
        let corr = |f: f64| {
            let (mut c, mut s) = (0.0, 0.0);
            for (i, v) in mid.iter().enumerate() {
                let ph = 2.0 * std::f64::consts::PI * f * i as f64 / 8000.0;
                c += *v as f64 * ph.cos();
                s += *v as f64 * ph.sin();
            }
            (c * c + s * s).sqrt()
        };
        assert!(corr(440.0) > 10.0 * corr(1000.0), "{ext}");
    }
}

fn expect_bad_file(path: &Path, what: &str) {
    match decode_file(path) {
        Err(DataError::BadFile { path: p, reason, .. }) => {
            assert_eq!(p, path, "{what}");
            let msg = format!("{}", DataError::BadFile { path: p, line: None, reason: reason.clone() });
            assert!(msg.contains(&*path.to_string_lossy()), "{what}: {msg}");
            println!("{what}: {msg}");
        }
        other => panic!("{what}: expected BadFile, got {other:?}"),
    }
}

#[test]
fn broken_files_are_named_errors() {
    let good = {
        let data: Vec<u8> = (0..4000i16).flat_map(|s| (s * 3).to_le_bytes()).collect();
        wav_bytes(1, 1, 8000, 16, &data)
    };
    expect_bad_file(&write("empty.wav", &[]), "zero-length");
    expect_bad_file(&write("trunc_data.wav", &good[..good.len() - 3001]), "truncated data");
    expect_bad_file(&write("trunc_header.wav", &good[..20]), "truncated header");
    expect_bad_file(&write("text.wav", b"hello, this is not audio at all\n"), "non-audio");
    let mut wrong = good.clone();
    wrong[20] = 0x34; // format tag 0x1234: unknown codec
    wrong[21] = 0x12;
    expect_bad_file(&write("wrongcodec.wav", &wrong), "unsupported codec");
    let mut nodata = good[..36].to_vec();
    nodata.extend_from_slice(b"data");
    nodata.extend_from_slice(&0u32.to_le_bytes());
    expect_bad_file(&write("nodata.wav", &nodata), "no samples");
    let junk: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    expect_bad_file(&write("junk.mp3", &junk), "random bytes as mp3");
    expect_bad_file(&write("junk.flac", &junk), "random bytes as flac");
    // A missing file is an I/O error naming it.
    let missing = tmp_dir().join("does-not-exist.wav");
    match decode_file(&missing) {
        Err(e @ DataError::Io { .. }) => assert!(e.to_string().contains("does-not-exist.wav")),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn load_resamples() {
    let data: Vec<u8> = (0..8000i32).flat_map(|i| (((i as f32 * 0.05).sin() * 10000.0) as i16).to_le_bytes()).collect();
    let p = write("load.wav", &wav_bytes(1, 1, 8000, 16, &data));
    let (y, sr) = load(&p, Some(22050)).unwrap();
    assert_eq!((y.len(), sr), (22050, 22050));
    let (y, sr) = load(&p, None).unwrap();
    assert_eq!((y.len(), sr), (8000, 8000));
}

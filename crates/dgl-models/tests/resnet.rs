//! ResNet-18 trunk, encoders and BatchNorm.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use dgl_core::rng::Rng;
use dgl_models::encoder::{AudioEncoder, Encoder, MlpEncoder, VisualEncoder};
use dgl_models::init::{fans, InitCtx};
use dgl_models::layers::BatchNorm2d;
use dgl_models::resnet::{ResNet, ResNetConfig};

fn ctx(seed: u64) -> InitCtx {
    InitCtx::new(seed, DType::F32, &Device::Cpu)
}

#[test]
fn torchvision_names_and_counts() {
    let net = ResNet::new(&ctx(0), ResNetConfig::resnet18(3, 64)).unwrap();
    let params = net.params();
    let buffers = net.buffers();
    // torchvision resnet18 has 62 parameter tensors including fc.weight / fc.bias; the trunk
    // without fc has 60 (conv1 + bn1: 3, 8 blocks × 6, 3 downsamples × 3).
    assert_eq!(params.len(), 60);
    assert_eq!(buffers.len(), 40); // 20 BNs × (running_mean, running_var)
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    for want in [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "layer1.0.conv1.weight",
        "layer1.1.bn2.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.weight",
        "layer4.1.conv2.weight",
    ] {
        assert!(names.contains(&want), "missing {want}");
    }
    assert!(!names.iter().any(|n| n.contains("running") || n.starts_with("fc")));
    assert!(!names.contains(&"layer1.0.downsample.0.weight"));
    let bnames: Vec<&str> = buffers.iter().map(|p| p.name.as_str()).collect();
    assert!(bnames.contains(&"layer1.0.bn1.running_mean"));
    assert!(bnames.contains(&"layer3.0.downsample.1.running_var"));
    let shape = |n: &str| params.iter().find(|p| p.name == n).unwrap().var.as_tensor().dims().to_vec();
    assert_eq!(shape("conv1.weight"), vec![64, 3, 7, 7]);
    assert_eq!(shape("layer2.0.downsample.0.weight"), vec![128, 64, 1, 1]);
    assert_eq!(shape("layer4.1.conv2.weight"), vec![512, 512, 3, 3]);
    let total: usize = params.iter().map(|p| p.var.as_tensor().elem_count()).sum();
    // torchvision resnet18: 11,689,512 parameters, of which fc has 513,000.
    assert_eq!(total, 11_689_512 - 513_000);
}

#[test]
fn official_init_statistics() {
    let net = AudioEncoder::new(&ctx(7), 1, 64).unwrap();
    for nv in net.params() {
        let t = nv.var.as_tensor();
        let v = to_vec(t);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        if t.rank() == 4 {
            let (_, fan_out) = fans(t.dims());
            let want = (2.0 / fan_out as f64).sqrt();
            let tol = 4.0 / (2.0 * n).sqrt() + 0.01;
            assert!((std / want - 1.0).abs() < tol, "{}: std {std} vs kaiming fan_out {want}", nv.name);
            assert!(mean.abs() < 4.0 * want / n.sqrt(), "{}: mean {mean}", nv.name);
        } else if nv.name.ends_with("weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{}", nv.name);
        } else {
            assert!(v.iter().all(|&x| x == 0.0), "{}", nv.name);
        }
    }
    for nv in net.buffers() {
        let want = if nv.name.ends_with("running_mean") { 0.0 } else { 1.0 };
        assert!(to_vec(nv.var.as_tensor()).iter().all(|&x| x == want), "{}", nv.name);
    }
    // Same seed, same weights; another seed, other weights.
    let again = AudioEncoder::new(&ctx(7), 1, 64).unwrap();
    let other = AudioEncoder::new(&ctx(8), 1, 64).unwrap();
    let w = |e: &AudioEncoder| to_vec(e.params()[0].var.as_tensor());
    assert_eq!(w(&net), w(&again));
    assert_ne!(w(&net), w(&other));
}

#[test]
fn mlp_encoder_xavier_and_shapes() {
    let mlp = MlpEncoder::new(&ctx(1), 300, &[256, 128]).unwrap();
    assert_eq!(mlp.out_dim(), 128);
    let names: Vec<String> = mlp.params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]);
    let w = to_vec(mlp.params()[0].var.as_tensor());
    let std = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
    let want = (2.0 / (300.0 + 256.0f64)).sqrt();
    assert!((std / want - 1.0).abs() < 0.03, "xavier std {std} vs {want}");
    let mut rng = Rng::new(0);
    let y = mlp.forward_t(&randn(&mut rng, &[4, 300], DType::F32), true).unwrap();
    assert_eq!(y.dims(), &[4, 128]);
    assert!(to_vec(&y).iter().all(|&v| v >= 0.0));
    let id = MlpEncoder::new(&ctx(1), 10, &[]).unwrap();
    assert_eq!(id.out_dim(), 10);
    assert!(id.params().is_empty());
    assert!(mlp.forward_t(&randn(&mut rng, &[4, 30], DType::F32), true).is_err());
}

#[test]
fn audio_and_visual_shapes() {
    let mut rng = Rng::new(3);
    let audio = AudioEncoder::new(&ctx(0), 1, 8).unwrap();
    let x = randn(&mut rng, &[2, 1, 257, 188], DType::F32);
    let fmap = audio.resnet().forward_t(&x, false).unwrap();
    assert_eq!(fmap.dims(), &[2, 64, 9, 6]); // official: 512 x 9 x 6 at base 64
    let z = audio.forward_t(&x, false).unwrap();
    assert_eq!(z.dims(), &[2, 64]);
    assert_close(&to_vec(&z), &to_vec(&fmap.mean_keepdim(3).unwrap().mean_keepdim(2).unwrap()), 1e-5, "gap");
    // (B, F, T) is accepted for 1 channel
    let z3 = audio.forward_t(&x.squeeze(1).unwrap(), false).unwrap();
    assert_eq!(to_vec(&z3), to_vec(&z));
    let ks = audio.resnet().forward_t(&randn(&mut rng, &[1, 1, 129, 626], DType::F32), false).unwrap();
    assert_eq!(ks.dims(), &[1, 64, 5, 20]); // official KS / VGGSound: 512 x 5 x 20

    // Visual: T frames share the CNN; z = mean over frames of the per-frame pooled features
    // (eval mode, so each frame's features do not depend on the batch).
    let visual = VisualEncoder::new(&ctx(1), 3, 8).unwrap();
    let frames = randn(&mut rng, &[2, 3, 3, 64, 48], DType::F32);
    let z = visual.forward_t(&frames, false).unwrap();
    assert_eq!(z.dims(), &[2, 64]);
    let mut acc = Tensor::zeros((2, 64), DType::F32, &Device::Cpu).unwrap();
    for t in 0..3 {
        let f = frames.narrow(2, t, 1).unwrap();
        acc = (acc + visual.forward_t(&f, false).unwrap()).unwrap();
    }
    assert_close(&to_vec(&z), &to_vec(&(acc / 3.0).unwrap()), 1e-5, "frame mean");
    let single = visual.forward_t(&frames.narrow(2, 0, 1).unwrap().squeeze(2).unwrap(), false).unwrap();
    let single5 = visual.forward_t(&frames.narrow(2, 0, 1).unwrap(), false).unwrap();
    assert_eq!(to_vec(&single), to_vec(&single5));
    let fmap = visual.resnet().forward_t(&randn(&mut rng, &[1, 3, 224, 224], DType::F32), false).unwrap();
    assert_eq!(fmap.dims(), &[1, 64, 7, 7]);
}

#[test]
fn audio_257x299_backward_works() {
    // The paper's CREMA-D size: layer 2 gives 33x38, whose stride-2 conv breaks candle's backward.
    let audio = AudioEncoder::new(&ctx(0), 1, 4).unwrap();
    let mut rng = Rng::new(4);
    let x = Var::from_tensor(&randn(&mut rng, &[1, 1, 257, 299], DType::F32)).unwrap();
    let fmap = audio.resnet().forward_t(x.as_tensor(), true).unwrap();
    assert_eq!(fmap.dims(), &[1, 32, 9, 10]);
    let z = audio.forward_t(x.as_tensor(), true).unwrap();
    let grads = z.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(grads.get(x.as_tensor()).unwrap().dims(), &[1, 1, 257, 299]);
    for nv in audio.params() {
        let g = grads.get(nv.var.as_tensor()).unwrap_or_else(|| panic!("no grad for {}", nv.name));
        assert!(to_vec(g).iter().all(|v| v.is_finite()), "{}", nv.name);
    }
}

#[test]
fn batchnorm_train_eval_and_running_stats() {
    let c = InitCtx::new(0, DType::F64, &Device::Cpu);
    let bn = BatchNorm2d::new(&c, "bn", 3).unwrap();
    let mut rng = Rng::new(5);
    let x = (randn(&mut rng, &[4, 3, 5, 6], DType::F64) * 2.0)
        .unwrap()
        .broadcast_add(&Tensor::new(&[1.0f64, -3.0, 0.5], &Device::Cpu).unwrap().reshape((1, 3, 1, 1)).unwrap())
        .unwrap();
    // train: per-channel batch statistics (biased variance), PyTorch formula
    let y = bn.forward_t(&x, true).unwrap();
    let xv = to_vec(&x);
    let n = 4 * 5 * 6;
    let mut means = [0.0; 3];
    let mut vars = [0.0; 3];
    for ch in 0..3 {
        let vals: Vec<f64> =
            (0..4).flat_map(|b| (0..30).map(move |i| (b, i))).map(|(b, i)| xv[(b * 3 + ch) * 30 + i]).collect();
        let m = vals.iter().sum::<f64>() / n as f64;
        means[ch] = m;
        vars[ch] = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64;
    }
    let yv = to_vec(&y);
    for b in 0..4 {
        for ch in 0..3 {
            for i in 0..30 {
                let k = (b * 3 + ch) * 30 + i;
                let want = (xv[k] - means[ch]) / (vars[ch] + 1e-5).sqrt();
                assert!((yv[k] - want).abs() < 1e-9);
            }
        }
    }
    // running stats: momentum 0.1, unbiased variance
    let rm = to_vec(bn.running_mean().as_tensor());
    let rv = to_vec(bn.running_var().as_tensor());
    for ch in 0..3 {
        assert!((rm[ch] - 0.1 * means[ch]).abs() < 1e-12);
        assert!((rv[ch] - (0.9 + 0.1 * vars[ch] * n as f64 / (n - 1) as f64)).abs() < 1e-12);
    }
    // eval: uses running stats, does not change them, differs from train output
    let ye = bn.forward_t(&x, false).unwrap();
    assert_eq!(to_vec(bn.running_mean().as_tensor()), rm);
    assert_eq!(to_vec(bn.running_var().as_tensor()), rv);
    let yev = to_vec(&ye);
    for b in 0..4 {
        for ch in 0..3 {
            let k = (b * 3 + ch) * 30;
            assert!((yev[k] - (xv[k] - rm[ch]) / (rv[ch] + 1e-5).sqrt()).abs() < 1e-9);
        }
    }
    assert!(yev.iter().zip(&yv).any(|(a, b)| (a - b).abs() > 1e-3));
    // gradients: weight/bias in both modes, never the running stats
    for train in [true, false] {
        let g = bn.forward_t(&x, train).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for p in bn.params() {
            assert!(g.get(p.var.as_tensor()).is_some(), "{} train={train}", p.name);
        }
        for b in bn.buffers() {
            assert!(g.get(b.var.as_tensor()).is_none(), "{} train={train}", b.name);
        }
    }
}

#[test]
fn batchnorm_train_backward_matches_finite_differences() {
    let c = InitCtx::new(0, DType::F64, &Device::Cpu);
    let bn = BatchNorm2d::new(&c, "bn", 2).unwrap();
    let mut rng = Rng::new(6);
    let x0 = randn(&mut rng, &[3, 2, 3, 4], DType::F64);
    let x = Var::from_tensor(&x0).unwrap();
    let y = bn.forward_t(x.as_tensor(), true).unwrap();
    let r = randn(&mut rng, y.dims(), DType::F64);
    let g = analytic_grad(&x, &y, &r);
    let f = |t: &Tensor| (bn.forward_t(t, true)? * &r)?.sum_all()?.to_scalar::<f64>();
    assert_close(&g, &fd_grad(&x0, 1e-6, &f), 1e-6, "bn dx");
}

#[test]
fn resnet_running_stats_change_in_train_mode_only() {
    let audio = AudioEncoder::new(&ctx(0), 1, 4).unwrap();
    let mut rng = Rng::new(7);
    let x = randn(&mut rng, &[2, 1, 64, 48], DType::F32);
    let snapshot = |e: &AudioEncoder| e.buffers().iter().map(|b| to_vec(b.var.as_tensor())).collect::<Vec<_>>();
    let before = snapshot(&audio);
    let z_eval = audio.forward_t(&x, false).unwrap();
    assert_eq!(snapshot(&audio), before, "eval changed running stats");
    let z_train = audio.forward_t(&x, true).unwrap();
    let after = snapshot(&audio);
    assert!(before.iter().zip(&after).all(|(a, b)| a != b), "every BN must update in train mode");
    assert!(to_vec(&z_eval).iter().zip(to_vec(&z_train)).any(|(a, b)| (a - b).abs() > 1e-4));
    // eval output is deterministic and batch-independent
    let z1 = audio.forward_t(&x.narrow(0, 0, 1).unwrap(), false).unwrap();
    let z2 = audio.forward_t(&x, false).unwrap();
    assert_close(&to_vec(&z1), &to_vec(&z2.narrow(0, 0, 1).unwrap()), 1e-5, "eval batch independence");
}

/// The fused CPU batch norm (f64 here): gradients of x, γ and β against central finite
/// differences, with non-trivial γ, β and per-channel offsets.
#[test]
fn batchnorm_affine_backward_matches_finite_differences() {
    let c = InitCtx::new(0, DType::F64, &Device::Cpu);
    let bn = BatchNorm2d::new(&c, "bn", 3).unwrap();
    let mut rng = Rng::new(8);
    let params = bn.params();
    let (gamma, beta) = (params[0].var.clone(), params[1].var.clone());
    let (g0, b0) = (randn(&mut rng, &[3], DType::F64), randn(&mut rng, &[3], DType::F64));
    gamma.set(&g0).unwrap();
    beta.set(&b0).unwrap();
    let offsets = Tensor::new(&[2.0f64, -1.0, 0.25], &Device::Cpu).unwrap().reshape((1, 3, 1, 1)).unwrap();
    let x0 = randn(&mut rng, &[4, 3, 2, 5], DType::F64).broadcast_add(&offsets).unwrap();
    let x = Var::from_tensor(&x0).unwrap();
    let y = bn.forward_t(x.as_tensor(), true).unwrap();
    let r = randn(&mut rng, y.dims(), DType::F64);
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let f = |t: &Tensor| (bn.forward_t(t, true)? * &r)?.sum_all()?.to_scalar::<f64>();
    assert_close(&to_vec(grads.get(x.as_tensor()).unwrap()), &fd_grad(&x0, 1e-6, &f), 1e-6, "bn dx");
    for (var, v0, what) in [(&gamma, &g0, "bn dγ"), (&beta, &b0, "bn dβ")] {
        let f = |t: &Tensor| {
            var.set(t)?;
            let out = (bn.forward_t(&x0, true)? * &r)?.sum_all()?.to_scalar::<f64>();
            var.set(v0)?;
            out
        };
        assert_close(&to_vec(grads.get(var.as_tensor()).unwrap()), &fd_grad(v0, 1e-6, &f), 1e-6, what);
    }
}

#[test]
fn resnet34_counts_and_torchvision_names() {
    let cfg = ResNetConfig::resnet34(3, 64);
    assert_eq!(cfg.blocks, [3, 4, 6, 3]);
    assert_eq!(cfg.name(), "resnet34");
    // torchvision resnet34: 21,797,672 parameters, of which fc (512 × 1000 + 1000) has 513,000.
    assert_eq!(cfg.param_count(), 21_797_672 - 513_000);
    assert_eq!(cfg.param_count(), 21_284_672);
    let net = ResNet::new(&ctx(0), cfg).unwrap();
    let params = net.params();
    let buffers = net.buffers();
    let total: usize = params.iter().map(|p| p.var.as_tensor().elem_count()).sum();
    assert_eq!(total as u128, cfg.param_count());
    // torchvision's state_dict has 218 keys: 36 BNs × 5 (weight, bias, running_mean, running_var,
    // num_batches_tracked) + 36 convs + fc.weight / fc.bias. Without num_batches_tracked and fc: 180.
    assert_eq!((params.len(), buffers.len()), (36 + 36 * 2, 36 * 2));
    assert_eq!(params.len() + buffers.len() + 36 + 2, 218);
    // The names are torchvision's: every block of every stage, downsample in the first block of
    // layers 2-4 only.
    let mut names: Vec<String> = params.iter().chain(&buffers).map(|p| p.name.clone()).collect();
    names.sort();
    let mut want = vec!["conv1.weight".to_string()];
    let bn = |p: &str| ["weight", "bias", "running_mean", "running_var"].map(|s| format!("{p}.{s}"));
    want.extend(bn("bn1"));
    for (stage, blocks) in [3, 4, 6, 3].into_iter().enumerate() {
        for b in 0..blocks {
            let p = format!("layer{}.{b}", stage + 1);
            want.push(format!("{p}.conv1.weight"));
            want.push(format!("{p}.conv2.weight"));
            want.extend(bn(&format!("{p}.bn1")));
            want.extend(bn(&format!("{p}.bn2")));
            if b == 0 && stage > 0 {
                want.push(format!("{p}.downsample.0.weight"));
                want.extend(bn(&format!("{p}.downsample.1")));
            }
        }
    }
    want.sort();
    assert_eq!(names, want);
    let shape = |n: &str| params.iter().find(|p| p.name == n).unwrap().var.as_tensor().dims().to_vec();
    assert_eq!(shape("layer3.5.conv2.weight"), vec![256, 256, 3, 3]);
    assert_eq!(shape("layer4.0.downsample.0.weight"), vec![512, 256, 1, 1]);
    // Same geometry as ResNet-18: only the first block of a stage strides.
    assert_eq!(cfg.feature_sizes(224, 224), ResNetConfig::resnet18(3, 64).feature_sizes(224, 224));
    let enc = VisualEncoder::with_config(&ctx(0), cfg).unwrap();
    assert_eq!(enc.describe(), "resnet34-visual(in 3, base 64)");
    assert_eq!(AudioEncoder::new(&ctx(0), 1, 8).unwrap().describe(), "resnet18-audio(in 1, base 8)");
}

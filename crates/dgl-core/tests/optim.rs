//! SGD / AdamW / Adam / MultiStepLR / OneCycleLR / clipping with PyTorch semantics.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use dgl_core::grads::ParamGrads;
use dgl_core::model::{GroupKind, NamedVar, ParamGroup};
use dgl_core::{AdamW, AdamWConfig, LrSchedule, Optimizer, OptimizerConfig, OptimizerKind, Sgd, SgdConfig};

/// Gradient of L = ½ Σ a_i p_i² (g = a ⊙ p), through candle's autograd.
fn grads_of(var: &Var, a: &Tensor) -> ParamGrads {
    let loss = (var.as_tensor().sqr().unwrap() * a).unwrap().sum_all().unwrap() * 0.5;
    let store = loss.unwrap().backward().unwrap();
    let groups = [ParamGroup { kind: GroupKind::Head, params: vec![NamedVar::new("p", var.clone())] }];
    ParamGrads::from_store(&store, &groups, |_| true)
}

/// Independent scalar re-statement of torch.optim.SGD.step for the same quadratic.
fn reference(cfg: &SgdConfig, p0: &[f64], a: &[f64], steps: usize) -> Vec<Vec<f64>> {
    let mut p = p0.to_vec();
    let mut buf: Option<Vec<f64>> = None;
    let mut traj = Vec::new();
    for _ in 0..steps {
        let mut d: Vec<f64> = p.iter().zip(a).map(|(p, a)| a * p + cfg.weight_decay * p).collect();
        if cfg.momentum != 0.0 {
            let b = match &buf {
                None => d.clone(),
                Some(b) => b.iter().zip(&d).map(|(b, d)| cfg.momentum * b + (1.0 - cfg.dampening) * d).collect(),
            };
            d = if cfg.nesterov { d.iter().zip(&b).map(|(d, b)| d + cfg.momentum * b).collect() } else { b.clone() };
            buf = Some(b);
        }
        p = p.iter().zip(&d).map(|(p, d)| p - cfg.lr * d).collect();
        traj.push(p.clone());
    }
    traj
}

fn run(cfg: SgdConfig, steps: usize) -> Vec<Vec<f64>> {
    let p0 = [1.0, -2.0, 0.5];
    let a = [1.0, 0.5, 3.0];
    let var = Var::from_tensor(&Tensor::new(&p0, &Device::Cpu).unwrap()).unwrap();
    let at = Tensor::new(&a, &Device::Cpu).unwrap();
    let mut opt = Sgd::new(cfg.clone()).unwrap();
    let mut traj = Vec::new();
    for _ in 0..steps {
        opt.step(&grads_of(&var, &at)).unwrap();
        traj.push(var.as_tensor().to_vec1::<f64>().unwrap());
    }
    let expected = reference(&cfg, &p0, &a, steps);
    for (s, (g, e)) in traj.iter().zip(&expected).enumerate() {
        for (x, y) in g.iter().zip(e) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{cfg:?} step {s}: {x} vs {y}");
        }
    }
    traj
}

#[test]
#[allow(clippy::approx_constant)] // 0.6931 is the hand-computed second step, not ln 2
fn sgd_hand_computed_first_steps() {
    // p0 = 1, a = 1, lr 0.1, momentum 0.9, wd 0.1 (by hand):
    // step 1: d = 1 + 0.1 = 1.1, buf = 1.1, p = 1 − 0.11 = 0.89
    // step 2: d = 0.89 + 0.089 = 0.979, buf = 0.99 + 0.979 = 1.969, p = 0.89 − 0.1969 = 0.6931
    let cfg = SgdConfig { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.1, nesterov: false };
    let traj = run(cfg, 2);
    assert!((traj[0][0] - 0.89).abs() < 1e-12);
    assert!((traj[1][0] - 0.6931).abs() < 1e-12);
}

#[test]
fn sgd_trajectories_match_pytorch_semantics() {
    for cfg in [
        SgdConfig { lr: 0.05, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false },
        SgdConfig { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 1e-2, nesterov: false },
        SgdConfig { lr: 0.05, momentum: 0.9, dampening: 0.3, weight_decay: 1e-2, nesterov: false },
        SgdConfig { lr: 0.02, momentum: 0.8, dampening: 0.0, weight_decay: 1e-3, nesterov: true },
    ] {
        run(cfg, 12);
    }
}

#[test]
fn parameters_without_gradient_and_buffers_are_never_touched() {
    let p = Var::from_tensor(&Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap()).unwrap();
    let frozen = Var::from_tensor(&Tensor::new(&[3.0f64], &Device::Cpu).unwrap()).unwrap();
    let loss = p.as_tensor().sum_all().unwrap();
    let store = loss.backward().unwrap();
    let groups = [ParamGroup {
        kind: GroupKind::Head,
        params: vec![NamedVar::new("p", p.clone()), NamedVar::new("frozen", frozen.clone())],
    }];
    let g = ParamGrads::from_store(&store, &groups, |_| true);
    assert_eq!(g.len(), 1, "a parameter without gradient is absent, like grad=None");
    let mut opt = Sgd::new(SgdConfig { weight_decay: 0.5, ..SgdConfig::default() }).unwrap();
    opt.step(&g).unwrap();
    assert_eq!(frozen.as_tensor().to_vec1::<f64>().unwrap(), vec![3.0], "weight decay never reaches it");
    assert_eq!(opt.state().len(), 1);
}

#[test]
fn invalid_hyper_parameters_are_refused() {
    for (cfg, key) in [
        (SgdConfig { lr: 0.0, ..SgdConfig::default() }, "lr"),
        (SgdConfig { lr: f64::NAN, ..SgdConfig::default() }, "lr"),
        (SgdConfig { momentum: -0.1, ..SgdConfig::default() }, "momentum"),
        (SgdConfig { weight_decay: -1.0, ..SgdConfig::default() }, "weight_decay"),
        (SgdConfig { nesterov: true, dampening: 0.5, ..SgdConfig::default() }, "nesterov"),
    ] {
        let e = Sgd::new(cfg).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
    let e = LrSchedule { milestones: vec![5, 3], ..Default::default() }.validate().unwrap_err();
    assert!(e.to_string().contains("milestones"));
}

#[test]
fn multistep_lr_matches_pytorch_and_official_off_by_one() {
    let s = LrSchedule { milestones: vec![3, 5], gamma: 0.1, official_off_by_one: false, ..Default::default() };
    let lrs: Vec<f64> = (0..7).map(|e| s.lr_at(1.0, e, 7)).collect();
    // torch: epochs 0-2 → 1, 3-4 → 0.1, 5+ → 0.01
    let want = [1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01];
    for (a, b) in lrs.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{lrs:?}");
    }
    let o = LrSchedule { official_off_by_one: true, ..s };
    assert!((o.lr_at(1.0, 2, 7) - 0.1).abs() < 1e-15, "official code decays one epoch early");
    assert!((o.lr_at(1.0, 1, 7) - 1.0).abs() < 1e-15);
}

/// OneCycleLR per epoch (ESANet's): the values PyTorch's two-phase cosine formula gives, by hand.
#[test]
fn one_cycle_schedule_matches_pytorch_by_hand() {
    use dgl_core::{ScheduleKind, Scheduled};
    let s = LrSchedule { kind: ScheduleKind::OneCycle, pct_start: 0.3, ..LrSchedule::default() };
    let (max, initial) = (0.01, 0.01 / 25.0);
    let min = initial / 1e4;
    let at = |e: usize| s.at(max, e, 10);
    let close = |a: Scheduled, lr: f64, m: f64| (a.lr - lr).abs() < 1e-15 && (a.momentum.unwrap() - m).abs() < 1e-15;
    // Warm-up ends at step 0.3·10 − 1 = 2: lr initial → max, momentum 0.95 → 0.85.
    assert!(close(at(0), initial, 0.95), "{:?}", at(0));
    assert!(close(at(1), (initial + max) / 2.0, 0.90), "{:?}", at(1));
    assert!(close(at(2), max, 0.85), "{:?}", at(2));
    // Annealing over steps 2..9: at 5.5 (not a step) half-way; step 9 the floor.
    let mid = |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0);
    assert!(close(at(5), mid(max, min, 3.0 / 7.0), mid(0.85, 0.95, 3.0 / 7.0)), "{:?}", at(5));
    assert!(close(at(9), min, 0.95), "{:?}", at(9));
    assert_eq!(at(12), at(9), "past the last step the schedule stays at its end");
    // ESANet's pct_start 0.1 over 10 epochs: PyTorch divides by zero at step 0; we start where
    // every other cycle starts (max / 25, momentum 0.95), then anneal from the peak over 1..9.
    let e = LrSchedule::esanet();
    assert!(close(e.at(max, 0, 10), initial, 0.95), "{:?}", e.at(max, 0, 10));
    assert!(close(e.at(max, 1, 10), mid(max, min, 1.0 / 9.0), mid(0.85, 0.95, 1.0 / 9.0)), "{:?}", e.at(max, 1, 10));
    // Over 500 epochs (ESANet's NYUv2 run) the warm-up is 49 steps long.
    assert!((e.lr_at(max, 49, 500) - max).abs() < 1e-15 && e.lr_at(max, 48, 500) < max);
    // Without momentum cycling only the lr moves; MultiStep never touches the momentum.
    assert_eq!(LrSchedule { cycle_momentum: false, ..s.clone() }.at(max, 3, 10).momentum, None);
    assert_eq!(LrSchedule::default().at(max, 3, 10), Scheduled { lr: max, momentum: None });
    // The optimizer takes both: SGD's momentum, Adam's β1.
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let mut o = OptimizerConfig { kind, ..OptimizerConfig::default() }.build().unwrap();
        o.apply(at(1));
        assert_eq!(o.lr(), at(1).lr);
        let m = match &o {
            Optimizer::Sgd(sgd) => sgd.config().momentum,
            Optimizer::AdamW(a) => a.config().beta1,
        };
        assert!((m - 0.90).abs() < 1e-15, "{kind:?}: {m}");
    }
    for (bad, key) in [
        (LrSchedule { pct_start: 1.5, ..s.clone() }, "pct_start"),
        (LrSchedule { div_factor: 0.0, ..s.clone() }, "div_factor"),
        (LrSchedule { max_momentum: 1.0, ..s.clone() }, "max_momentum"),
    ] {
        assert!(bad.validate().unwrap_err().to_string().contains(key), "{key}");
    }
}

#[test]
fn clip_grad_norm_matches_torch() {
    let a = Var::from_tensor(&Tensor::new(&[3.0f64, 0.0], &Device::Cpu).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::new(&[4.0f64], &Device::Cpu).unwrap()).unwrap();
    // L = ½(‖a‖² + ‖b‖²) → grads (3,0), (4); global norm 5.
    let loss = ((a.as_tensor().sqr().unwrap().sum_all().unwrap() + b.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap()
        * 0.5)
        .unwrap();
    let groups = [ParamGroup {
        kind: GroupKind::Head,
        params: vec![NamedVar::new("a", a.clone()), NamedVar::new("b", b.clone())],
    }];
    let mut g = ParamGrads::from_store(&loss.backward().unwrap(), &groups, |_| true);
    let norm = g.clip_global_norm(10.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-12);
    assert_eq!(g.get("b").unwrap().to_vec1::<f64>().unwrap(), vec![4.0], "below max_norm: untouched");
    let norm = g.clip_global_norm(1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-12);
    let coef = 1.0 / (5.0 + 1e-6);
    assert!((g.get("a").unwrap().to_vec1::<f64>().unwrap()[0] - 3.0 * coef).abs() < 1e-12);
    assert!((g.global_norm().unwrap() - 5.0 * coef).abs() < 1e-12);
    let _ = DType::F64;
}

/// Independent scalar re-statement, for the quadratic, of torch.optim.AdamW.step (`decoupled`) or
/// torch.optim.Adam.step (L2 term in the gradient), amsgrad=False.
fn adam_reference(cfg: &AdamWConfig, decoupled: bool, p0: &[f64], a: &[f64], steps: usize) -> Vec<Vec<f64>> {
    let mut p = p0.to_vec();
    let mut m = vec![0.0; p.len()];
    let mut v = vec![0.0; p.len()];
    let mut traj = Vec::new();
    for t in 1..=steps {
        for i in 0..p.len() {
            let mut g = a[i] * p[i];
            if decoupled {
                p[i] *= 1.0 - cfg.lr * cfg.weight_decay;
            } else {
                g += cfg.weight_decay * p[i];
            }
            m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
            v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
            let step_size = cfg.lr / (1.0 - cfg.beta1.powi(t as i32));
            let denom = v[i].sqrt() / (1.0 - cfg.beta2.powi(t as i32)).sqrt() + cfg.eps;
            p[i] -= step_size * m[i] / denom;
        }
        traj.push(p.clone());
    }
    traj
}

/// Takes `want.len()` steps on the quadratic and checks every iterate of `var` against `want`.
fn assert_trajectory(var: &Var, a: &Tensor, want: &[Vec<f64>], mut step: impl FnMut(&ParamGrads), label: &str) {
    for (s, w) in want.iter().enumerate() {
        step(&grads_of(var, a));
        let got = var.as_tensor().to_vec1::<f64>().unwrap();
        for (x, y) in got.iter().zip(w) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{label} step {s}: {x} vs {y}");
        }
    }
}

#[test]
fn adamw_trajectories_match_pytorch_semantics() {
    let p0 = [1.0, -2.0, 0.5];
    let a = [1.0, 0.5, 3.0];
    for cfg in [
        AdamWConfig::default(),
        AdamWConfig { lr: 0.05, weight_decay: 0.0, ..AdamWConfig::default() },
        AdamWConfig { lr: 0.01, beta1: 0.5, beta2: 0.9, eps: 1e-3, weight_decay: 0.1 },
    ] {
        let var = Var::from_tensor(&Tensor::new(&p0, &Device::Cpu).unwrap()).unwrap();
        let at = Tensor::new(&a, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(cfg.clone()).unwrap();
        let want = adam_reference(&cfg, true, &p0, &a, 15);
        assert_trajectory(&var, &at, &want, |g| opt.step(g).unwrap(), &format!("{cfg:?}"));
        // Adam: the same moments on g + wd·p, no decoupled decay (differs once wd > 0).
        let var = Var::from_tensor(&Tensor::new(&p0, &Device::Cpu).unwrap()).unwrap();
        let mut opt = OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            ..OptimizerConfig::default()
        }
        .build()
        .unwrap();
        let want = adam_reference(&cfg, false, &p0, &a, 15);
        assert_trajectory(&var, &at, &want, |g| opt.step(g).unwrap(), &format!("Adam {cfg:?}"));
    }
    // Adam by hand, first step: g' = g + wd·p = 1·2 + 0.5·2 = 3, p1 = 2 − lr·g'/|g'| = 1.9.
    let var = Var::from_tensor(&Tensor::new(&[2.0f64], &Device::Cpu).unwrap()).unwrap();
    let cfg = AdamWConfig { lr: 0.1, weight_decay: 0.5, eps: 0.0, ..AdamWConfig::default() };
    AdamW::adam(cfg).unwrap().step(&grads_of(&var, &Tensor::new(&[1.0f64], &Device::Cpu).unwrap())).unwrap();
    assert!((var.as_tensor().to_vec1::<f64>().unwrap()[0] - 1.9).abs() < 1e-12);
    // By hand, first step: m̂ = g, v̂ = g², so p1 = p0·(1 − lr·wd) − lr·g/(|g| + ε) ≈ p0 − lr·sign(g).
    let var = Var::from_tensor(&Tensor::new(&[2.0f64], &Device::Cpu).unwrap()).unwrap();
    let cfg = AdamWConfig { lr: 0.1, weight_decay: 0.5, eps: 0.0, ..AdamWConfig::default() };
    AdamW::new(cfg).unwrap().step(&grads_of(&var, &Tensor::new(&[1.0f64], &Device::Cpu).unwrap())).unwrap();
    assert!((var.as_tensor().to_vec1::<f64>().unwrap()[0] - (2.0 * 0.95 - 0.1)).abs() < 1e-12);
}

#[test]
fn optimizer_state_round_trips_for_sgd_and_adamw() {
    let p0 = [1.0, -2.0, 0.5];
    let at = Tensor::new(&[1.0, 0.5, 3.0], &Device::Cpu).unwrap();
    for kind in [OptimizerKind::Sgd, OptimizerKind::AdamW, OptimizerKind::Adam] {
        let cfg = OptimizerConfig { kind, lr: 0.05, ..OptimizerConfig::default() };
        // 6 steps straight vs 3 steps, state saved, a fresh optimizer restored, 3 more steps.
        let straight = Var::from_tensor(&Tensor::new(&p0, &Device::Cpu).unwrap()).unwrap();
        let mut a = cfg.build().unwrap();
        for _ in 0..6 {
            a.step(&grads_of(&straight, &at)).unwrap();
        }
        let split = Var::from_tensor(&Tensor::new(&p0, &Device::Cpu).unwrap()).unwrap();
        let mut b = cfg.build().unwrap();
        for _ in 0..3 {
            b.step(&grads_of(&split, &at)).unwrap();
        }
        let state = b.state().unwrap();
        let names: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
        match kind {
            OptimizerKind::Sgd => assert_eq!(names, ["momentum_buffer.p"]),
            OptimizerKind::AdamW | OptimizerKind::Adam => assert_eq!(names, ["exp_avg.p", "exp_avg_sq.p", "step.p"]),
        }
        let mut c = cfg.build().unwrap();
        c.load_state(state).unwrap();
        for _ in 0..3 {
            c.step(&grads_of(&split, &at)).unwrap();
        }
        assert_eq!(
            straight.as_tensor().to_vec1::<f64>().unwrap(),
            split.as_tensor().to_vec1::<f64>().unwrap(),
            "{kind:?}: bit-identical after a state round trip"
        );
        // Another optimizer's state is refused with the offending entry named.
        let other = OptimizerConfig {
            kind: if kind == OptimizerKind::Sgd { OptimizerKind::AdamW } else { OptimizerKind::Sgd },
            ..cfg.clone()
        };
        let mut d = other.build().unwrap();
        let e = d.load_state(a.state().unwrap()).unwrap_err().to_string();
        assert!(e.contains(".p`"), "{e}");
    }
    let _: Optimizer = Sgd::new(SgdConfig::default()).unwrap().into();
}

#[test]
fn invalid_adamw_hyper_parameters_are_refused() {
    for (cfg, key) in [
        (AdamWConfig { lr: 0.0, ..AdamWConfig::default() }, "lr"),
        (AdamWConfig { beta1: 1.0, ..AdamWConfig::default() }, "beta1"),
        (AdamWConfig { beta2: -0.1, ..AdamWConfig::default() }, "beta2"),
        (AdamWConfig { eps: -1.0, ..AdamWConfig::default() }, "eps"),
        (AdamWConfig { weight_decay: f64::INFINITY, ..AdamWConfig::default() }, "weight_decay"),
    ] {
        let e = AdamW::new(cfg).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
    let e = OptimizerConfig { kind: OptimizerKind::AdamW, beta2: 1.5, ..OptimizerConfig::default() }.validate();
    assert!(e.unwrap_err().to_string().contains("beta2"));
}

/// SGD with momentum ≥ 1 never forgets (or amplifies) past gradients: refused, naming the key.
#[test]
fn momentum_of_one_or_more_is_refused() {
    for m in [1.0, 1.5, f64::INFINITY, f64::NAN] {
        let e = Sgd::new(SgdConfig { momentum: m, ..SgdConfig::default() }).unwrap_err().to_string();
        assert!(e.contains("momentum") && e.contains("[0, 1)"), "{m}: {e}");
        let e = OptimizerConfig { momentum: m, ..OptimizerConfig::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("momentum"), "{m}: {e}");
    }
    assert!(Sgd::new(SgdConfig { momentum: 0.999, ..SgdConfig::default() }).is_ok());
}

/// A non-finite value in any field of the optimizer table is refused naming the field, also a
/// field only the other optimizer kind would read.
#[test]
fn non_finite_optimizer_fields_are_refused_whatever_the_kind() {
    let base = OptimizerConfig::default();
    for kind in [OptimizerKind::Sgd, OptimizerKind::AdamW] {
        for (key, cfg) in [
            ("lr", OptimizerConfig { lr: f64::NAN, ..base.clone() }),
            ("weight_decay", OptimizerConfig { weight_decay: f64::INFINITY, ..base.clone() }),
            ("dampening", OptimizerConfig { dampening: f64::NAN, ..base.clone() }),
            ("beta1", OptimizerConfig { beta1: f64::NAN, ..base.clone() }),
            ("beta2", OptimizerConfig { beta2: f64::NEG_INFINITY, ..base.clone() }),
            ("eps", OptimizerConfig { eps: f64::NAN, ..base.clone() }),
        ] {
            let e = OptimizerConfig { kind, ..cfg }.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")) && e.contains("finite"), "{kind:?} {key}: {e}");
        }
    }
}

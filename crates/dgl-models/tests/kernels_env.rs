//! `DGL_KERNELS=candle` starts the process with the project's kernels off; `set_enabled`
//! overrides it. (Its own test binary: the switch is process-wide.)

#[test]
fn the_environment_sets_the_initial_state_and_set_enabled_overrides_it() {
    std::env::set_var("DGL_KERNELS", "candle");
    assert!(!dgl_models::kernels::enabled(), "DGL_KERNELS=candle turns the kernels off");
    std::env::set_var("DGL_KERNELS", "ours");
    assert!(!dgl_models::kernels::enabled(), "read once: later changes of the variable do not flip it");
    dgl_models::kernels::set_enabled(true);
    assert!(dgl_models::kernels::enabled());
    let x = candle_core::Tensor::ones((1, 1, 4, 4), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    assert!(dgl_models::cpu::supports(&[&x]), "the CPU kernels follow the switch");
    dgl_models::kernels::set_enabled(false);
    assert!(!dgl_models::cpu::supports(&[&x]));
}

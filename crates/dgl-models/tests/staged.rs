//! The ResNet encoders run stage by stage (`StagedEncoder`), so that fusion modules can sit between
//! stages: the stages composed are the encoder, bit for bit (training and evaluation mode, BatchNorm
//! running statistics included), and their parameters are the encoder's, in order.

use candle_core::{DType, Device, Tensor};
use dgl_core::rng::Rng;
use dgl_models::{AudioEncoder, Encoder, InitCtx, StagedEncoder, VisualEncoder};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

fn buffers(e: &dyn Encoder) -> Vec<u32> {
    e.buffers().iter().flat_map(|b| bits(b.var.as_tensor())).collect()
}

/// Runs `staged` stage by stage and `whole` at once (twins from the same seed) on `x`, in both
/// modes, and compares outputs and BatchNorm statistics bit for bit; checks the stage widths and
/// parameters.
fn stages_compose_to_the_encoder<E: StagedEncoder>(staged: &E, whole: &E, x: &Tensor, base: usize) {
    for train in [true, false] {
        let (mut h, frames) = staged.stage_input(x).unwrap();
        for s in 0..staged.num_stages() {
            h = staged.forward_stage(s, &h, train).unwrap();
            assert_eq!(h.dim(1).unwrap(), staged.stage_channels(s), "stage {s}");
        }
        let z_staged = staged.pool(&h, frames).unwrap();
        let z = whole.forward_t(x, train).unwrap();
        assert_eq!(z_staged.dims(), &[x.dim(0).unwrap(), 8 * base]);
        assert_eq!(bits(&z_staged), bits(&z), "train = {train}");
        assert_eq!(buffers(staged), buffers(whole), "running statistics, train = {train}");
    }
    let by_stage: Vec<String> = (0..staged.num_stages()).flat_map(|s| staged.stage_params(s)).map(|p| p.name).collect();
    let all: Vec<String> = staged.params().into_iter().map(|p| p.name).collect();
    assert_eq!(by_stage, all);
    assert_eq!(
        staged.stage_params(0).iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["conv1.weight", "bn1.weight", "bn1.bias"]
    );
    assert!(staged.stage_params(2).iter().all(|p| p.name.starts_with("layer2.")));
}

#[test]
fn resnet_encoders_run_stage_by_stage() {
    let base = 2;
    let ctx = || InitCtx::new(5, DType::F32, &Device::Cpu);
    let (a, a2) = (AudioEncoder::new(&ctx(), 1, base).unwrap(), AudioEncoder::new(&ctx(), 1, base).unwrap());
    stages_compose_to_the_encoder(&a, &a2, &randn(&[3, 1, 40, 36], 1), base);
    let (v, v2) = (VisualEncoder::new(&ctx(), 3, base).unwrap(), VisualEncoder::new(&ctx(), 3, base).unwrap());
    // Two frames per sample: the frames share the trunk and are averaged by `pool`.
    stages_compose_to_the_encoder(&v, &v2, &randn(&[3, 3, 2, 32, 32], 2), base);
    let e = a.forward_stage(5, &randn(&[1, 1, 8, 8], 3), false).unwrap_err().to_string();
    assert!(e.contains("stages 0..5"), "{e}");
}

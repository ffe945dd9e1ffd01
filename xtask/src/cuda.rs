//! `cargo xtask cuda-build [--cudnn]`: the project's CUDA build on a machine without a GPU
//! (docs/gpu.md). Installs the CUDA 13.0 toolchain from PyPI wheels into `.cuda/` (once), builds
//! `dgl`, `step-bench` and the CPU/CUDA parity test with `--features cuda` into `target-cuda/` (so CPU builds and CI never see
//! the CUDA environment), and gathers them with a launcher in `gpu-bundle/`.

use std::path::Path;
use std::process::Command;

fn sh(script: &str) -> Result<(), String> {
    println!("+ {script}");
    let st = Command::new("bash").arg("-c").arg(script).status().map_err(|e| format!("bash: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("command failed ({st}): {script}"))
    }
}

pub fn cuda_build(cudnn: bool) -> Result<(), String> {
    if !Path::new(".cuda/env.sh").is_file() {
        sh("CUDA_PREFIX=$PWD/.cuda bash xtask/cuda/setup-cuda-toolchain.sh")?;
    }
    let mut features = "cuda".to_string();
    if cudnn {
        sh("source .cuda/env.sh && .cuda/venv/bin/pip install -q 'nvidia-cudnn-cu13>=9,<10' && \
            D=$(.cuda/venv/bin/python -c 'import nvidia,os,glob; print(os.path.dirname(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0],\"**\",\"libcudnn.so.9*\"), recursive=True))[0]))') && \
            ln -sf $D/libcudnn.so.9 .cuda/linkstubs/libcudnn.so")?;
        features = "cudnn".into();
    }
    sh(&format!(
        "source .cuda/env.sh && cargo build --release --target-dir target-cuda -p dgl-cli -p dgl-benchmarks --features {features}"
    ))?;
    // The CPU/CUDA parity test (crates/dgl-models/tests/cuda_parity.rs) as a binary of its own.
    sh(&format!(
        "set -o pipefail && source .cuda/env.sh && cargo test --release --target-dir target-cuda -p dgl-models --features {features} \
         --test cuda_parity --no-run 2>&1 | tee target-cuda/cuda-parity-build.txt"
    ))?;
    sh("rm -rf gpu-bundle && mkdir -p gpu-bundle && cp target-cuda/release/dgl target-cuda/release/step-bench gpu-bundle/ && \
        cp \"$(grep -o 'target-cuda/release/deps/cuda_parity-[0-9a-f]*' target-cuda/cuda-parity-build.txt | tail -1)\" gpu-bundle/cuda-parity && \
        cp xtask/cuda/run-on-gpu.sh gpu-bundle/run.sh && chmod +x gpu-bundle/run.sh && \
        objdump -p gpu-bundle/dgl | grep NEEDED && ls -la gpu-bundle")?;
    // The device tool carries at most 64 MiB: the three binaries are ~175 MB, ~20 MB stripped and
    // xz-compressed. `benchmarks/gpu-check.sh` unpacks it when gpu-bundle/ is not there.
    sh("tmp=$(mktemp -d) && cp gpu-bundle/* \"$tmp\"/ && strip \"$tmp\"/dgl \"$tmp\"/step-bench \"$tmp\"/cuda-parity && \
        tar -C \"$tmp\" -cf - . | xz -T0 -6 > gpu-bundle.tar.xz && rm -rf \"$tmp\" && ls -la gpu-bundle.tar.xz")?;
    println!(
        "gpu-bundle/ is ready: on the GPU machine run `gpu-bundle/run.sh dgl train --device cuda …`; \
         carry gpu-bundle.tar.xz (< 64 MiB) to a lent device and run `bash benchmarks/gpu-check.sh`"
    );
    Ok(())
}

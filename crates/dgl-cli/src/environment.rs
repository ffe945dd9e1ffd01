//! The environment of a run, recorded in `RUN_DIR/environment.jsonl` (one line per start or
//! resume): the DGL README warns that the best α "may vary with the dependencies", so every run
//! says exactly what produced it — source commit, compiler, candle version, features, machine,
//! threads, device and precision, and the command line.

use serde::Serialize;

use crate::config::TrainConfig;

/// One start (or resume) of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// Seconds since the Unix epoch when the run (re)started.
    pub started_unix: u64,
    /// `start` or `resume`.
    pub event: String,
    pub dgl_version: String,
    /// `git rev-parse --short=12 HEAD` of the source at build time (`unknown` outside git).
    pub git_commit: String,
    pub rustc: String,
    pub target: String,
    pub profile: String,
    pub candle_version: String,
    /// Cargo features of the build (`cuda`, `cudnn`).
    pub features: Vec<String>,
    pub os: String,
    pub cpu: String,
    pub logical_cpus: usize,
    /// Threads of the rayon pool the run computes in (a job's own under `xtask --jobs`).
    pub rayon_threads: usize,
    pub device: String,
    pub tf32: bool,
    /// The project's own kernels (CPU convolution / batch norm, cuDNN convolution) in use.
    pub own_kernels: bool,
    /// The arguments of this process; one that is not valid UTF-8 (a path, typically) is recorded
    /// with U+FFFD in place of the invalid bytes.
    pub command_line: Vec<String>,
}

impl Environment {
    /// The environment of this process for `cfg`.
    pub fn capture(cfg: &TrainConfig, event: &str) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
                })
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let mut features = Vec::new();
        if cfg!(feature = "cuda") {
            features.push("cuda".to_string());
        }
        if cfg!(feature = "cudnn") {
            features.push("cudnn".to_string());
        }
        Self {
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            event: event.into(),
            dgl_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: env!("DGL_GIT_COMMIT").into(),
            rustc: env!("DGL_RUSTC_VERSION").into(),
            target: env!("DGL_TARGET").into(),
            profile: env!("DGL_PROFILE").into(),
            candle_version: env!("DGL_CANDLE_VERSION").into(),
            features,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            cpu,
            logical_cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            rayon_threads: rayon::current_num_threads(),
            device: format!("{:?}", cfg.device).to_lowercase(),
            tf32: cfg.train.tf32,
            own_kernels: dgl_models::kernels::enabled(),
            command_line: command_line(),
        }
    }
}

/// The command line, lossily converted: `std::env::args()` panics on an argument that is not
/// valid UTF-8, which a Unix path may well be.
fn command_line() -> Vec<String> {
    std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect()
}

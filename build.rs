//! Build script. With the `cuda` feature it compiles `kernels/unitfp8.cu` with `nvcc` (from the
//! `NVCC` environment variable, else `PATH`) into one fatbin holding sm_89 and sm_90a machine
//! code plus compute_89 PTX, written to `$OUT_DIR/unitfp8.fatbin` and embedded by
//! `src/cuda/driver.rs`. The ptxas resource report (`-Xptxas -v`) goes to
//! `$OUT_DIR/ptxas.log`; a kernel that spills registers is reported as a build warning.
//! Without the feature nothing is compiled and no CUDA installation is needed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=NVCC");
    let nvcc = find_nvcc().unwrap_or_else(|| {
        panic!(
            "the `cuda` feature needs nvcc: set NVCC=/path/to/nvcc or put nvcc on PATH \
             (for example `pip install nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 \
             nvidia-cuda-crt==13.0.88`, see scripts/cuda-check.sh)"
        )
    });
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let fatbin = out.join("unitfp8.fatbin");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source = manifest.join("kernels").join("unitfp8.cu");
    let output = Command::new(&nvcc)
        .args([
            "-fatbin",
            "-std=c++17",
            "-O3",
            "-Xptxas",
            "-v",
            "-gencode",
            "arch=compute_89,code=sm_89",
            "-gencode",
            "arch=compute_90a,code=sm_90a",
            "-gencode",
            "arch=compute_89,code=compute_89",
            "-o",
        ])
        .arg(&fatbin)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("could not run nvcc ({}): {e}", nvcc.display()));
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    std::fs::write(out.join("ptxas.log"), &log).expect("write ptxas.log");
    if !output.status.success() {
        panic!("nvcc failed ({}):\n{log}", output.status);
    }
    for line in log.lines() {
        if line.contains("bytes spill")
            && !line.contains(" 0 bytes spill stores, 0 bytes spill loads")
        {
            println!(
                "cargo:warning=register spill in a CUDA kernel: {}",
                line.trim()
            );
        }
    }
}

/// `$NVCC`, else the first `nvcc` on `PATH`.
fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC") {
        let p = PathBuf::from(p);
        return is_file(&p).then_some(p);
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join("nvcc"))
        .find(|p| is_file(p))
}

fn is_file(p: &Path) -> bool {
    p.metadata().map(|m| m.is_file()).unwrap_or(false)
}

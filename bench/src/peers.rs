//! The Python peers (ml_dtypes, PyTorch), run as subprocesses with `${PYTHON:-python3}`.

use serde_json::{Value, json};
use std::process::Command;

/// Results of one Python peer.
pub struct PyPeer {
    /// Short name ("ml_dtypes", "torch").
    pub name: &'static str,
    /// Whether it ran.
    pub available: bool,
    /// Why not, or what was measured.
    pub note: String,
    /// The peer's whole JSON answer (or an error record).
    pub raw: Value,
}

impl PyPeer {
    /// Median seconds per call and % of its own copy for `(kernel, size, threads)`.
    pub fn lookup(&self, kernel: &str, size: &str, threads: usize) -> Option<(f64, f64)> {
        self.raw["results"].as_array()?.iter().find_map(|r| {
            (r["kernel"] == kernel && r["size"] == size && r["threads"] == threads as u64)
                .then(|| Some((r["median_s"].as_f64()?, r["pct_copy"].as_f64()?)))?
        })
    }
}

/// The one-line hint printed when the PyTorch peers are off.
pub const TORCH_OFF: &str = "PyTorch peers off: set UNITFP8_BENCH_TORCH=1 to add them \
(bench/run.sh then installs torch into .venv when it is missing)";

/// Whether the PyTorch peers run: `UNITFP8_BENCH_TORCH=1`.
pub fn torch_enabled() -> bool {
    std::env::var("UNITFP8_BENCH_TORCH").is_ok_and(|v| v == "1")
}

/// The Python interpreter: `$PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// Runs `bench/peers/<script>` with `config` and parses its answer; failures become an
/// unavailable peer with the reason in its note.
pub fn run(name: &'static str, script: &str, config: &Value) -> PyPeer {
    let path = format!("{}/peers/{script}", env!("CARGO_MANIFEST_DIR"));
    let py = python();
    let fail = |note: String| PyPeer {
        name,
        available: false,
        raw: json!({"peer": name, "available": false, "note": note}),
        note,
    };
    // The peer's progress lines go straight to our stderr.
    let out = match Command::new(&py)
        .arg(&path)
        .arg(config.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
    {
        Ok(o) => o,
        Err(e) => return fail(format!("could not run {py}: {e}")),
    };
    if !out.status.success() {
        return fail(format!(
            "{py} {script} failed ({}); its error is printed above",
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(v) => PyPeer {
            name,
            available: v["available"].as_bool().unwrap_or(false),
            note: v["note"].as_str().unwrap_or("").to_string()
                + &v["version"]
                    .as_str()
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default(),
            raw: v,
        },
        Err(e) => fail(format!("unparsable answer from {script}: {e}")),
    }
}

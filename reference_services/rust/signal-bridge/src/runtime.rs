//! Loading ONNX Runtime dynamically (`ort` with `load-dynamic`): the very library shipped in
//! the Python `onnxruntime` wheel, so Python and Rust run the same engine and no binary
//! is downloaded at build time.
//!
//! Search order: `ORT_DYLIB_PATH`; then `<onnxruntime package>/capi/libonnxruntime.so*`
//! as reported by a Python interpreter: `TRADEWIRE_PYTHON`, `.venv/bin/python` in the
//! current directory or any parent, then in the executable's directory or any parent
//! (`target/release/` of the repository), then `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::{BridgeError, Result};

const PY_LOCATE: &str = "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))";

fn lib_in(capi: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so")
                    || n == "libonnxruntime.dylib"
                    || n == "onnxruntime.dll"
            })
        })
        .collect();
    found.sort();
    found.pop()
}

fn pythons() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("TRADEWIRE_PYTHON") {
        out.push(PathBuf::from(p));
    }
    let starts = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    ];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let py = dir.join(".venv/bin/python");
            if py.exists() {
                out.push(py);
                break;
            }
        }
    }
    out.push(PathBuf::from("python3"));
    out
}

/// Path of the ONNX Runtime shared library to load.
pub fn find_onnxruntime() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return if p.exists() {
            Ok(p)
        } else {
            Err(BridgeError::RuntimeNotFound(format!(
                "ORT_DYLIB_PATH={} does not exist",
                p.display()
            )))
        };
    }
    let mut tried = Vec::new();
    for py in pythons() {
        let Ok(out) = Command::new(&py).args(["-c", PY_LOCATE]).output() else {
            tried.push(format!("{} (not runnable)", py.display()));
            continue;
        };
        if !out.status.success() {
            tried.push(format!("{} (no onnxruntime)", py.display()));
            continue;
        }
        let pkg = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(lib) = lib_in(&pkg.join("capi")) {
            return Ok(lib);
        }
        tried.push(format!(
            "{} (no library in {}/capi)",
            py.display(),
            pkg.display()
        ));
    }
    Err(BridgeError::RuntimeNotFound(format!(
        "set ORT_DYLIB_PATH or `pip install onnxruntime`; tried {}",
        tried.join(", ")
    )))
}

static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// The process-wide ONNX Runtime environment (loads the library on first use).
pub fn environment() -> Result<&'static Environment> {
    ENV.get_or_init(|| {
        let lib = find_onnxruntime().map_err(|e| e.to_string())?;
        ort::init_from(&lib)
            .map_err(|e| format!("loading {}: {e}", lib.display()))?
            .with_name("signal-bridge")
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| BridgeError::RuntimeNotFound(e.clone()))
}

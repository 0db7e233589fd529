//! Reader of the model registry written by Python's `tradewire.ml.ModelRegistry`
//! (format `tradewire.model-registry/1`, documented in src/tradewire/ml/registry.py).
//! Resolution and checks are the same as in Python: `latest`, a version (`3`, `v3`) or a
//! pin name; sha256 of the file and feature names/order verified before use.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{io_err, BridgeError, Result};

pub const FORMAT: &str = "tradewire.model-registry/1";

#[derive(Debug, Clone, Deserialize)]
struct RawEntry {
    version: u64,
    name: String,
    file: String,
    sha256: String,
    feature_names: Vec<String>,
    #[serde(default = "default_input")]
    input: String,
    #[serde(default = "default_output")]
    output: String,
    #[serde(default)]
    classes: Vec<String>,
}

fn default_input() -> String {
    "features".into()
}
fn default_output() -> String {
    "signal_probabilities".into()
}

#[derive(Debug, Deserialize)]
struct RawRegistry {
    format: String,
    latest: Option<u64>,
    #[serde(default)]
    pins: BTreeMap<String, u64>,
    models: Vec<RawEntry>,
}

/// A resolved registry entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    pub version: u64,
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub feature_names: Vec<String>,
    pub input: String,
    pub output: String,
    pub classes: Vec<String>,
}

/// The registry file (`registry.json`) and the directory its model paths are relative to.
#[derive(Debug)]
pub struct Registry {
    file: PathBuf,
    raw: RawRegistry,
}

impl Registry {
    /// `path` is the registry directory or its `registry.json`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("registry.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(io_err(&file))?;
        let raw: RawRegistry = serde_json::from_str(&text).map_err(|e| BridgeError::Registry {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        if raw.format != FORMAT {
            return Err(BridgeError::Registry {
                path: file,
                reason: format!("unknown format {:?} (want {FORMAT:?})", raw.format),
            });
        }
        Ok(Self { file, raw })
    }

    fn err(&self, reason: String) -> BridgeError {
        BridgeError::Registry {
            path: self.file.clone(),
            reason,
        }
    }

    /// `latest`, a version number (`3` / `v3`) or a pin name -> entry (not verified).
    pub fn resolve(&self, spec: &str) -> Result<ModelEntry> {
        let version = if spec == "latest" {
            self.raw
                .latest
                .ok_or_else(|| self.err("no model registered".into()))?
        } else if let Ok(v) = spec.trim_start_matches('v').parse::<u64>() {
            v
        } else if let Some(&v) = self.raw.pins.get(spec) {
            v
        } else {
            return Err(self.err(format!("no pin or version {spec:?}")));
        };
        let raw = self
            .raw
            .models
            .iter()
            .find(|m| m.version == version)
            .ok_or_else(|| self.err(format!("no model version {version}")))?;
        let dir = self.file.parent().unwrap_or(Path::new("."));
        Ok(ModelEntry {
            version,
            name: raw.name.clone(),
            path: dir.join(&raw.file),
            sha256: raw.sha256.clone(),
            feature_names: raw.feature_names.clone(),
            input: raw.input.clone(),
            output: raw.output.clone(),
            classes: raw.classes.clone(),
        })
    }

    /// Like [`Registry::resolve`], restricted to entries named `name` (any name when
    /// empty), as the services choose their model (reference_services/SPEC.md 4):
    /// `latest` is the registry's latest entry if it has that name, else the highest
    /// version with that name; a version or pin must have that name.
    pub fn resolve_named(&self, spec: &str, name: &str) -> Result<ModelEntry> {
        if name.is_empty() {
            return self.resolve(spec);
        }
        if spec == "latest" {
            if let Ok(entry) = self.resolve("latest") {
                if entry.name == name {
                    return Ok(entry);
                }
            }
            let version = self
                .raw
                .models
                .iter()
                .filter(|m| m.name == name)
                .map(|m| m.version)
                .max()
                .ok_or_else(|| {
                    let mut names: Vec<&str> =
                        self.raw.models.iter().map(|m| m.name.as_str()).collect();
                    names.sort_unstable();
                    names.dedup();
                    self.err(format!("no model named {name:?} (registered: {names:?})"))
                })?;
            return self.resolve(&version.to_string());
        }
        let entry = self.resolve(spec)?;
        if entry.name != name {
            return Err(self.err(format!(
                "{spec:?} is model v{} named {:?}, not {name:?}",
                entry.version, entry.name
            )));
        }
        Ok(entry)
    }

    /// [`Registry::resolve_named`], then the checks of [`Registry::load`].
    pub fn load_named(
        &self,
        spec: &str,
        name: &str,
        expected_features: &[&str],
    ) -> Result<ModelEntry> {
        self.verify(self.resolve_named(spec, name)?, expected_features)
    }

    /// Resolve, then verify the file's sha256 and the feature names/order.
    pub fn load(&self, spec: &str, expected_features: &[&str]) -> Result<ModelEntry> {
        self.verify(self.resolve(spec)?, expected_features)
    }

    fn verify(&self, entry: ModelEntry, expected_features: &[&str]) -> Result<ModelEntry> {
        let actual = sha256_file(&entry.path)?;
        if actual != entry.sha256 {
            return Err(BridgeError::Integrity {
                path: entry.path,
                expected: entry.sha256,
                actual,
            });
        }
        check_features(
            &format!("model v{}", entry.version),
            &entry.feature_names,
            expected_features,
        )?;
        Ok(entry)
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Stored names must equal the expected ones, in order.
pub fn check_features(what: &str, stored: &[String], expected: &[&str]) -> Result<()> {
    if stored.len() != expected.len() || stored.iter().zip(expected).any(|(a, b)| a != b) {
        return Err(BridgeError::FeatureMismatch {
            what: what.to_string(),
            stored: stored.to_vec(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(())
}

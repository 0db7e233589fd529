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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NAMES: [&str; 7] = [
        "rsi",
        "macd",
        "bollinger_bands",
        "moving_average_20",
        "moving_average_50",
        "volume_ratio",
        "price_momentum",
    ];

    /// A fresh registry directory under the system temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "tw-registry-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entry(dir: &Path, version: u64, name: &str, features: &[&str]) -> serde_json::Value {
        let file = format!("{name}-v{version}.onnx");
        std::fs::write(dir.join(&file), format!("model bytes v{version}")).unwrap();
        let sha256 = sha256_file(&dir.join(&file)).unwrap();
        serde_json::json!({
            "version": version, "name": name, "file": file, "sha256": sha256,
            "feature_names": features, "input": "features", "output": "signal_probabilities",
            "classes": ["buy", "hold", "sell"], "created_at": "2025-01-01T00:00:00+00:00",
            "metadata": {"model_type": "numpy-mlp"}
        })
    }

    fn write(dir: &Path, doc: &serde_json::Value) {
        std::fs::write(dir.join("registry.json"), doc.to_string()).unwrap();
    }

    /// v1 and v2 named "strategy", v3 named "xgb"; latest = 2, production = 1, canary = 3.
    fn three_versions() -> Dir {
        let d = Dir::new();
        let models = vec![
            entry(&d.0, 1, "strategy", &NAMES),
            entry(&d.0, 2, "strategy", &NAMES),
            entry(&d.0, 3, "xgb", &NAMES),
        ];
        write(
            &d.0,
            &serde_json::json!({
                "format": FORMAT, "latest": 2,
                "pins": {"production": 1, "canary": 3}, "models": models
            }),
        );
        d
    }

    fn message(r: Result<ModelEntry>) -> String {
        r.expect_err("should fail").to_string()
    }

    #[test]
    fn latest_resolves_and_verifies() {
        let d = three_versions();
        let reg = Registry::open(&d.0).unwrap();
        let e = reg.load("latest", &NAMES).unwrap();
        assert_eq!(e.version, 2);
        assert_eq!(e.name, "strategy");
        assert_eq!(e.path, d.0.join("strategy-v2.onnx"));
        assert_eq!(e.feature_names, NAMES);
        assert_eq!(
            (e.input.as_str(), e.output.as_str()),
            ("features", "signal_probabilities")
        );
        assert_eq!(e.classes, ["buy", "hold", "sell"]);
        // opening the registry.json itself is the same as opening its directory
        let by_file = Registry::open(&d.0.join("registry.json")).unwrap();
        assert_eq!(by_file.resolve("latest").unwrap(), e);
    }

    #[test]
    fn version_numbers_with_and_without_v() {
        let d = three_versions();
        let reg = Registry::open(&d.0).unwrap();
        for (spec, want) in [("1", 1), ("v1", 1), ("3", 3), ("v3", 3)] {
            let e = reg.load(spec, &NAMES).unwrap();
            assert_eq!(e.version, want, "{spec}");
            assert!(e.path.ends_with(format!("{}-v{want}.onnx", e.name)));
        }
        let msg = message(reg.resolve("9"));
        assert!(msg.contains("no model version 9"), "{msg}");
    }

    #[test]
    fn pinned_names_resolve_to_their_version() {
        let d = three_versions();
        let reg = Registry::open(&d.0).unwrap();
        assert_eq!(reg.load("production", &NAMES).unwrap().version, 1);
        assert_eq!(reg.load("canary", &NAMES).unwrap().version, 3);
        assert_eq!(reg.load_named("canary", "xgb", &NAMES).unwrap().version, 3);
        let msg = message(reg.resolve_named("canary", "strategy"));
        assert!(msg.contains("not \"strategy\""), "{msg}");
        // latest restricted to a name: registry latest if it has the name, else the newest
        assert_eq!(reg.resolve_named("latest", "strategy").unwrap().version, 2);
        assert_eq!(reg.resolve_named("latest", "xgb").unwrap().version, 3);
        let msg = message(reg.resolve_named("latest", "other"));
        assert!(msg.contains("no model named \"other\""), "{msg}");
    }

    #[test]
    fn unknown_pin_is_a_clear_error() {
        let d = three_versions();
        let reg = Registry::open(&d.0).unwrap();
        let err = reg.load("staging", &NAMES).expect_err("unknown pin");
        assert!(matches!(err, BridgeError::Registry { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("no pin or version \"staging\""), "{msg}");
        assert!(msg.contains("registry.json"), "names the file: {msg}");
        // a pin pointing at a version that is not registered
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.0.join("registry.json")).unwrap())
                .unwrap();
        doc["pins"]["stale"] = 7.into();
        write(&d.0, &doc);
        let msg = message(Registry::open(&d.0).unwrap().resolve("stale"));
        assert!(msg.contains("no model version 7"), "{msg}");
    }

    #[test]
    fn feature_names_mismatch_in_registry_is_a_clear_error() {
        let d = Dir::new();
        let mut swapped = NAMES;
        swapped.swap(0, 1);
        let models = vec![
            entry(&d.0, 1, "strategy", &swapped),
            entry(&d.0, 2, "strategy", &NAMES[..6]),
        ];
        write(
            &d.0,
            &serde_json::json!({"format": FORMAT, "latest": 1, "pins": {}, "models": models}),
        );
        let reg = Registry::open(&d.0).unwrap();
        for spec in ["latest", "2"] {
            let err = reg.load(spec, &NAMES).expect_err("mismatch");
            let BridgeError::FeatureMismatch {
                ref stored,
                ref expected,
                ..
            } = err
            else {
                panic!("want FeatureMismatch, got {err:?}");
            };
            assert_eq!(expected, &NAMES);
            assert_ne!(stored.as_slice(), NAMES.as_slice());
            let msg = err.to_string();
            assert!(msg.contains("was trained on features"), "{msg}");
            assert!(msg.contains("model v"), "{msg}");
        }
        // the same entries load when the caller computes those features
        assert_eq!(reg.load("1", &swapped).unwrap().version, 1);
    }

    #[test]
    fn tampered_file_fails_the_sha256_check() {
        let d = three_versions();
        std::fs::write(d.0.join("strategy-v2.onnx"), "tampered").unwrap();
        let reg = Registry::open(&d.0).unwrap();
        let err = reg.load("latest", &NAMES).expect_err("tampered");
        assert!(matches!(err, BridgeError::Integrity { .. }), "{err:?}");
        assert!(err.to_string().contains("refusing to load"));
        assert_eq!(reg.load("production", &NAMES).unwrap().version, 1);
        std::fs::remove_file(d.0.join("strategy-v1.onnx")).unwrap();
        assert!(matches!(
            reg.load("production", &NAMES),
            Err(BridgeError::Io { .. })
        ));
    }

    #[test]
    fn empty_foreign_or_broken_registries_are_rejected() {
        let d = Dir::new();
        write(
            &d.0,
            &serde_json::json!({"format": FORMAT, "latest": null, "pins": {}, "models": []}),
        );
        let msg = message(Registry::open(&d.0).unwrap().resolve("latest"));
        assert!(msg.contains("no model registered"), "{msg}");
        write(
            &d.0,
            &serde_json::json!({"format": "other/1", "latest": null, "models": []}),
        );
        let err = Registry::open(&d.0).expect_err("foreign format");
        assert!(err.to_string().contains("unknown format"), "{err}");
        std::fs::write(d.0.join("registry.json"), "{not json").unwrap();
        assert!(matches!(
            Registry::open(&d.0),
            Err(BridgeError::Registry { .. })
        ));
        let missing = Registry::open(&d.0.join("nowhere")).expect_err("missing");
        assert!(matches!(missing, BridgeError::Io { .. }), "{missing:?}");
    }

    #[test]
    fn check_features_wants_same_names_in_same_order() {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_features("m", &owned(&NAMES), &NAMES).is_ok());
        assert!(check_features("m", &owned(&NAMES[..6]), &NAMES).is_err());
        let mut rev = NAMES;
        rev.reverse();
        assert!(check_features("m", &owned(&rev), &NAMES).is_err());
    }
}

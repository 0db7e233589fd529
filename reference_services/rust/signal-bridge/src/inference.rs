//! ONNX inference for the TradingModel (seed §2.2), with the feature contract enforced:
//! the model's embedded `tradewire.feature_names` (and the registry's, when loaded through
//! it) must equal [`tradewire_features::FEATURE_NAMES`] before any inference.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::Tensor;
use tradewire::v1::trading_signal::SignalType;
use tradewire_features::{FEATURE_NAMES, N_FEATURES};

use crate::error::{BridgeError, Result};
use crate::registry::{check_features, Registry};
use crate::runtime;

pub const META_FEATURES: &str = "tradewire.feature_names";
pub const N_CLASSES: usize = 3;

/// Trading decision from the class probabilities (buy, hold, sell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Buy,
    Hold,
    Sell,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Buy => "buy",
            Signal::Hold => "hold",
            Signal::Sell => "sell",
        }
    }

    /// The service's decision ([`tradewire_rules::decide`]): buy/sell when it is the most
    /// likely class with probability > `threshold`, otherwise hold; with its confidence.
    pub fn from_probabilities(p: &[f32; N_CLASSES], threshold: f64) -> (Signal, f64) {
        let (kind, confidence) = tradewire_rules::decide(p, threshold);
        let signal = match kind {
            SignalType::Buy => Signal::Buy,
            SignalType::Hold => Signal::Hold,
            SignalType::Sell => Signal::Sell,
        };
        (signal, confidence)
    }
}

/// A loaded, verified model.
pub struct TradingModelInference {
    session: Session,
    input: String,
    output: String,
    path: PathBuf,
    scratch: Vec<f32>,
}

impl TradingModelInference {
    /// Load a model file; its embedded feature names (if any) must match ours.
    pub fn from_path(path: &Path) -> Result<Self> {
        Self::build(path, "features", "signal_probabilities")
    }

    /// Load `spec` (`latest`, version, pin) from a registry: sha256 and feature names are
    /// checked against the registry, then the embedded names against ours.
    pub fn from_registry(registry: &Path, spec: &str) -> Result<Self> {
        let entry = Registry::open(registry)?.load(spec, &FEATURE_NAMES)?;
        Self::build(&entry.path, &entry.input, &entry.output)
    }

    /// [`TradingModelInference::from_registry`] restricted to entries named `name`
    /// ([`Registry::resolve_named`]).
    pub fn from_registry_named(registry: &Path, spec: &str, name: &str) -> Result<Self> {
        let entry = Registry::open(registry)?.load_named(spec, name, &FEATURE_NAMES)?;
        Self::build(&entry.path, &entry.input, &entry.output)
    }

    fn build(path: &Path, input: &str, output: &str) -> Result<Self> {
        let env = runtime::environment()?;
        let session = Session::builder(env)?
            .with_intra_threads(1)
            .map_err(ort::Error::from)?
            .commit_from_file(path)?;
        let model_err = |reason: String| BridgeError::Model {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(names) = session.metadata()?.custom(META_FEATURES) {
            let stored: Vec<String> = serde_json::from_str(&names)
                .map_err(|e| model_err(format!("bad {META_FEATURES} metadata: {e}")))?;
            check_features(&path.display().to_string(), &stored, &FEATURE_NAMES)?;
        }
        if !session.inputs().iter().any(|o| o.name() == input) {
            return Err(model_err(format!("no input named {input:?}")));
        }
        if !session.outputs().iter().any(|o| o.name() == output) {
            return Err(model_err(format!("no output named {output:?}")));
        }
        Ok(Self {
            session,
            input: input.to_string(),
            output: output.to_string(),
            path: path.to_path_buf(),
            scratch: Vec::with_capacity(N_FEATURES),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Probabilities for `rows.len() / 7` rows (row-major), `3` per row.
    pub fn predict_batch(&mut self, rows: &[f32]) -> Result<Vec<f32>> {
        if !rows.len().is_multiple_of(N_FEATURES) {
            return Err(BridgeError::Input(format!(
                "{} values is not a whole number of {N_FEATURES}-feature rows",
                rows.len()
            )));
        }
        let n = rows.len() / N_FEATURES;
        let tensor = Tensor::from_array(([n, N_FEATURES], rows.to_vec()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])?;
        let (shape, data) = outputs[self.output.as_str()].try_extract_tensor::<f32>()?;
        if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != N_CLASSES {
            return Err(BridgeError::Model {
                path: self.path.clone(),
                reason: format!("output shape {shape:?}, want [{n}, {N_CLASSES}]"),
            });
        }
        Ok(data.to_vec())
    }

    /// One feature row (as produced by `FeatureState::update`) -> probabilities.
    pub fn predict(&mut self, features: &[f64; N_FEATURES]) -> Result<[f32; N_CLASSES]> {
        self.scratch.clear();
        self.scratch.extend(features.iter().map(|&x| x as f32));
        let tensor = Tensor::from_array(([1usize, N_FEATURES], std::mem::take(&mut self.scratch)))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])?;
        let (_, data) = outputs[self.output.as_str()].try_extract_tensor::<f32>()?;
        let mut out = [0f32; N_CLASSES];
        if data.len() != N_CLASSES {
            return Err(BridgeError::Model {
                path: self.path.clone(),
                reason: format!("{} outputs for one row, want {N_CLASSES}", data.len()),
            });
        }
        out.copy_from_slice(data);
        Ok(out)
    }
}

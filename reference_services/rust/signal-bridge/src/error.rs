use std::path::PathBuf;

/// Everything that can stop the bridge from serving a model.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("ONNX Runtime library not found: {0}")]
    RuntimeNotFound(String),
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry {path}: {reason}")]
    Registry { path: PathBuf, reason: String },
    #[error("{path}: sha256 {actual} != registered {expected}; refusing to load")]
    Integrity {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{what} was trained on features {stored:?}, but this bridge computes {expected:?}")]
    FeatureMismatch {
        what: String,
        stored: Vec<String>,
        expected: Vec<String>,
    },
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("input: {0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, BridgeError>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BridgeError + '_ {
    move |source| BridgeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

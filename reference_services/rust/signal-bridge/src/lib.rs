//! signal-bridge as a library: model registry access, ONNX Runtime loading and inference.
//! `main.rs` is a thin CLI over it; its service mode (`service.rs`: subscribe, per-tick
//! [`tradewire_features::FeatureState`], [`inference::TradingModelInference::predict`],
//! publish) is reference_services/SPEC.md section 4.

pub mod error;
pub mod inference;
pub mod npy;
pub mod registry;
pub mod runtime;

pub use error::BridgeError;
pub use inference::{Signal, TradingModelInference};
pub use registry::{ModelEntry, Registry};

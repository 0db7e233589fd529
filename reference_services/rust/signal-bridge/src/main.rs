//! signal-bridge CLI.
//!
//! ```text
//! signal-bridge [--config PATH]      the service (reference_services/SPEC.md section 4):
//!                                    market data in, TradingSignal out, model from [model]
//! signal-bridge (--model PATH | --registry DIR [--version latest|N|PIN]) MODE
//!   --test-inference             JSON {input, output, signals, ...} on deterministic rows
//!                                computed by tradewire-features (per-tick path)
//!   --test-inference-file F.npy  JSON {output} for a float32/float64 [n, 7] .npy
//!   --bench-tick N               per-tick features + single-row inference latency (µs)
//! ```
//! Exit status 2 on usage errors, 1 on any load/inference error (printed to stderr).

mod service;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use signal_bridge::{npy, BridgeError, Signal, TradingModelInference};
use tradewire_features::{FeatureState, FEATURE_NAMES, N_FEATURES};

const USAGE: &str = "usage: signal-bridge (--model PATH | --registry DIR [--version SPEC]) \
(--test-inference | --test-inference-file F.npy | --bench-tick N)";

enum Mode {
    TestInference,
    File(PathBuf),
    Bench(usize),
}

struct Args {
    model: Option<PathBuf>,
    registry: Option<PathBuf>,
    version: String,
    mode: Mode,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut model, mut registry, mut version, mut mode) = (None, None, "latest".to_string(), None);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--model" => model = Some(PathBuf::from(val("--model")?)),
            "--registry" => registry = Some(PathBuf::from(val("--registry")?)),
            "--version" => version = val("--version")?,
            "--test-inference" => mode = Some(Mode::TestInference),
            "--test-inference-file" => {
                mode = Some(Mode::File(PathBuf::from(val("--test-inference-file")?)))
            }
            "--bench-tick" => {
                let n = val("--bench-tick")?;
                mode = Some(Mode::Bench(
                    n.parse().map_err(|_| format!("bad count {n}"))?,
                ));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if model.is_some() == registry.is_some() {
        return Err("give exactly one of --model and --registry".into());
    }
    let mode = mode.ok_or("give a mode")?;
    Ok(Args {
        model,
        registry,
        version,
        mode,
    })
}

/// Deterministic price/volume walk (xorshift), shared by --test-inference and --bench-tick.
fn walk(n: usize) -> Vec<(f64, f64)> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut p = 100.0;
    (0..n)
        .map(|_| {
            p *= 1.0 + (next() - 0.5) * 0.01;
            (p, (next() * 2000.0).floor())
        })
        .collect()
}

fn rows_json(data: &[f32], width: usize) -> Vec<Vec<f64>> {
    data.chunks(width)
        .map(|r| r.iter().map(|&x| f64::from(x)).collect())
        .collect()
}

fn run(args: Args) -> Result<(), BridgeError> {
    let mut model = match (&args.model, &args.registry) {
        (Some(m), _) => TradingModelInference::from_path(m)?,
        (None, Some(r)) => TradingModelInference::from_registry(r, &args.version)?,
        (None, None) => unreachable!("checked in parse"),
    };
    match args.mode {
        Mode::TestInference => {
            let mut st = FeatureState::new();
            let rows: Vec<[f64; N_FEATURES]> = walk(300)
                .into_iter()
                .filter_map(|(p, v)| st.update(p, v).expect("walk is valid"))
                .collect();
            let input: Vec<f32> = rows[rows.len() - 4..]
                .iter()
                .flat_map(|r| r.iter().map(|&x| x as f32))
                .collect();
            let output = model.predict_batch(&input)?;
            let signals: Vec<&str> = output
                .chunks(3)
                .map(|p| {
                    Signal::from_probabilities(&[p[0], p[1], p[2]], 0.6)
                        .0
                        .as_str()
                })
                .collect();
            let doc = json!({
                "model": model.path(),
                "feature_names": FEATURE_NAMES,
                "input": rows_json(&input, N_FEATURES),
                "output": rows_json(&output, 3),
                "signals": signals,
            });
            println!("{doc}");
        }
        Mode::File(path) => {
            let (rows, cols, data) = npy::read_f32_matrix(&path)?;
            if cols != N_FEATURES {
                return Err(BridgeError::Input(format!(
                    "{rows}x{cols} array: want {N_FEATURES} columns"
                )));
            }
            let output = model.predict_batch(&data)?;
            println!(
                "{}",
                json!({ "rows": rows, "output": rows_json(&output, 3) })
            );
        }
        Mode::Bench(n) => {
            let ticks = walk(n + 100);
            let mut st = FeatureState::new();
            let mut lat = Vec::with_capacity(n);
            let mut last = Signal::Hold;
            for &(p, v) in &ticks {
                let t0 = Instant::now();
                if let Some(row) = st.update(p, v).expect("walk is valid") {
                    let probs = model.predict(&row)?;
                    last = Signal::from_probabilities(&probs, 0.6).0;
                    lat.push(t0.elapsed().as_nanos() as f64 / 1000.0);
                }
            }
            lat.sort_by(f64::total_cmp);
            let q = |f: f64| lat[((lat.len() - 1) as f64 * f) as usize];
            println!(
                "{}",
                json!({ "ticks": lat.len(), "p50_us": q(0.5), "p99_us": q(0.99),
                        "max_us": q(1.0), "last_signal": last.as_str() })
            );
        }
    }
    Ok(())
}

/// Arguments that select the one-shot inference modes rather than the service.
const MODE_FLAGS: [&str; 6] = [
    "--model",
    "--registry",
    "--version",
    "--test-inference",
    "--test-inference-file",
    "--bench-tick",
];

fn main() {
    if !std::env::args()
        .skip(1)
        .any(|a| MODE_FLAGS.contains(&a.split('=').next().unwrap_or("")))
    {
        service::run();
        return;
    }
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("signal-bridge: {msg}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("signal-bridge: {e}");
        std::process::exit(1);
    }
}

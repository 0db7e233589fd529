//! The `tradewire-roundtrip` binary's stdin/stdout protocol.

use std::io::Write;
use std::process::{Command, Stdio};

use tradewire::{v1, wire};

fn run(args: &[&str], input: &[u8]) -> (i32, Vec<u8>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradewire-roundtrip"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tradewire-roundtrip");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout)
}

fn record(frame: &[u8]) -> Vec<u8> {
    [&(frame.len() as u32).to_le_bytes()[..], frame].concat()
}

/// Splits the output into (status, body) responses.
fn responses(mut out: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut result = Vec::new();
    while !out.is_empty() {
        let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        let body = &out[4..4 + len];
        result.push((body[0], body[1..].to_vec()));
        out = &out[4 + len..];
    }
    result
}

#[test]
fn round_trips_and_reports_errors() {
    let signal = v1::TradingSignal {
        symbol: "MSFT".into(),
        signal: 1,
        confidence: -0.0,
        timestamp_us: -1,
        features: [("rsi".to_string(), f64::NAN)].into_iter().collect(),
    };
    let mut good = Vec::new();
    wire::encode_message(
        "signals",
        "MSFT",
        &signal,
        9,
        2,
        1,
        3,
        wire::FLAG_REPLAY,
        &mut good,
    )
    .unwrap();
    // Unknown fields are dropped by the prost re-encoding; the envelope is rebuilt.
    let env = wire::decode(&good).unwrap();
    let with_unknown = [env.payload, b"\xa0\x06\x96\x01"].concat();
    let unknown_frame = wire::Envelope {
        payload: &with_unknown,
        ..env
    }
    .to_vec()
    .unwrap();
    let mut bad_type = good.clone();
    let t = good.iter().position(|&b| b == 0).unwrap() + 1;
    bad_type[t + 4] = 99;

    let input = [
        record(&good),
        record(&unknown_frame),
        record(b"x"),
        record(&bad_type),
    ]
    .concat();
    let (code, out) = run(&[], &input);
    assert_eq!(code, 0);
    let resp = responses(&out);
    assert_eq!(resp.len(), 4);
    assert_eq!(resp[0], (0, good.clone()));
    assert_eq!(resp[1], (0, good));
    assert_eq!(resp[2].0, 1);
    assert!(String::from_utf8_lossy(&resp[2].1).starts_with("truncated: "));
    assert_eq!(resp[3].0, 1);
    assert!(String::from_utf8_lossy(&resp[3].1).starts_with("unknown_type: "));

    // EOF inside a record is an error; no input at all is fine.
    assert_eq!(run(&[], b"\x05\x00\x00\x00ab").0, 1);
    assert_eq!(run(&[], b""), (0, vec![]));
}

#[test]
fn describe() {
    let (code, out) = run(&["--describe"], b"");
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), tradewire::channels::MESSAGE_TYPES.len());
    let md = tradewire::channels::MARKET_DATA_TYPE;
    assert_eq!(
        lines[0],
        format!("1 tradewire.v1.MarketData {:#018x}", md.fingerprint)
    );
    assert_eq!(run(&["--bogus"], b"").0, 2);
}

//! The golden vectors of `conformance/vectors/` (normative, see `conformance/WIRE.md`)
//! against the Rust implementation.
//!
//! Set `TRADEWIRE_VECTORS=DIR` to run against another directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tradewire::catalog::{self, SchemaMessage};
use tradewire::v1;
use tradewire::wire::{self, Envelope};

fn vectors_dir() -> PathBuf {
    std::env::var_os("TRADEWIRE_VECTORS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/vectors"),
        PathBuf::from,
    )
}

fn vector_files() -> Vec<PathBuf> {
    let dir = vectors_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot read golden vectors in {}: {e} (generate them with conformance/generate_vectors.py)",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.json golden vectors in {} (generate them with conformance/generate_vectors.py)",
        dir.display()
    );
    files
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn field<'v>(v: &'v Value, name: &str) -> &'v Value {
    v.get(name)
        .unwrap_or_else(|| panic!("missing field `{name}` in {v}"))
}

fn string<'v>(v: &'v Value, name: &str) -> &'v str {
    field(v, name)
        .as_str()
        .unwrap_or_else(|| panic!("field `{name}` is not a string in {v}"))
}

fn bytes(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(string(v, name)).unwrap_or_else(|e| panic!("field `{name}` is not hex: {e}"))
}

fn number(v: &Value, name: &str) -> u64 {
    field(v, name)
        .as_u64()
        .unwrap_or_else(|| panic!("field `{name}` is not an unsigned integer in {v}"))
}

/// A u64 written as a decimal string (JSON numbers lose precision past 2^53).
fn decimal(v: &Value, name: &str) -> u64 {
    string(v, name)
        .parse()
        .unwrap_or_else(|e| panic!("field `{name}` is not a decimal u64: {e}"))
}

fn hex_u64(v: &Value, name: &str) -> u64 {
    let s = string(v, name);
    let digits = s
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("field `{name}` = {s:?} lacks 0x"));
    u64::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("field `{name}` = {s:?}: {e}"))
}

/// Checks one message vector file against message type `M`; failures are appended.
fn check_message_file<M: SchemaMessage + PartialEq>(file: &Value, failures: &mut String) {
    let fingerprint = hex_u64(file, "fingerprint");
    let type_id = number(file, "type_id");
    if type_id != u64::from(M::TYPE.type_id) {
        let _ = writeln!(
            failures,
            "{}: type_id {type_id} != generated {}",
            M::TYPE.full_name,
            M::TYPE.type_id
        );
    }
    if fingerprint != M::TYPE.fingerprint {
        let _ = writeln!(
            failures,
            "{}: fingerprint {fingerprint:#018x} != generated {:#018x} (stale src/gen/channels.rs?)",
            M::TYPE.full_name,
            M::TYPE.fingerprint
        );
    }
    let cases = field(file, "cases")
        .as_array()
        .expect("`cases` is an array");
    assert!(!cases.is_empty(), "{}: no cases", M::TYPE.full_name);
    for case in cases {
        let name = format!("{}/{}", M::TYPE.full_name, string(case, "name"));
        if let Err(msg) = check_message_case::<M>(case, fingerprint) {
            let _ = writeln!(failures, "{name}: {msg}");
        }
    }
}

fn check_message_case<M: SchemaMessage + PartialEq>(
    case: &Value,
    fingerprint: u64,
) -> Result<(), String> {
    let payload = bytes(case, "payload_hex");
    let canonical = field(case, "canonical")
        .as_bool()
        .expect("`canonical` is a bool");
    let decoded = M::decode(payload.as_slice()).map_err(|e| format!("prost decode: {e}"))?;
    let reencoded = decoded.encode_to_vec();
    if let Some(known) = case.get("known_only_hex") {
        let known = hex::decode(known.as_str().expect("known_only_hex is a string")).expect("hex");
        if reencoded != known {
            return Err(format!(
                "re-encoding {} != known_only_hex {}",
                hex::encode(&reencoded),
                hex::encode(&known)
            ));
        }
    } else if canonical {
        if reencoded != payload {
            return Err(format!(
                "canonical: re-encoding {} != payload {}",
                hex::encode(&reencoded),
                hex::encode(&payload)
            ));
        }
    } else {
        // Maps: entry order (and default-valued entry fields) may differ, so compare
        // the decoded messages through their deterministic (BTreeMap) re-encodings:
        // NaN-safe, unlike `==`.
        let again =
            M::decode(reencoded.as_slice()).map_err(|e| format!("decode of re-encoding: {e}"))?;
        if again.encode_to_vec() != reencoded {
            return Err("re-encoding does not decode to the same message".into());
        }
        if reencoded.len() > payload.len() + 16 || payload.is_empty() != reencoded.is_empty() {
            return Err(format!(
                "re-encoding {} is implausible for payload {}",
                hex::encode(&reencoded),
                hex::encode(&payload)
            ));
        }
    }

    let frame = bytes(case, "envelope_hex");
    let env = wire::decode(&frame).map_err(|e| format!("envelope: {} ({})", e.kind(), e))?;
    if env.payload != payload.as_slice() {
        return Err("envelope payload != payload_hex".into());
    }
    if env.type_id != M::TYPE.type_id {
        return Err(format!(
            "envelope type_id {} != {}",
            env.type_id,
            M::TYPE.type_id
        ));
    }
    if env.fingerprint != fingerprint {
        return Err(format!(
            "envelope fingerprint {:#018x} != file's {fingerprint:#018x}",
            env.fingerprint
        ));
    }
    let typed: M = wire::decode_message(&env).map_err(|e| format!("decode_message: {e}"))?;
    if typed.encode_to_vec() != reencoded {
        return Err("decode_message differs from a plain prost decode".into());
    }
    let again = env
        .to_vec()
        .map_err(|e| format!("envelope re-encode: {e}"))?;
    if again != frame {
        return Err(format!(
            "envelope re-encoding {} != envelope_hex",
            hex::encode(&again)
        ));
    }
    Ok(())
}

fn check_envelope_file(file: &Value, failures: &mut String) {
    let valid = field(file, "valid")
        .as_array()
        .expect("`valid` is an array");
    let invalid = field(file, "invalid")
        .as_array()
        .expect("`invalid` is an array");
    assert!(
        !valid.is_empty() && !invalid.is_empty(),
        "envelope.json has empty lists"
    );
    let mut saw_worked_example = false;
    for case in valid {
        let name = string(case, "name");
        saw_worked_example |= name == "worked_example";
        if let Err(msg) = check_valid_envelope(case) {
            let _ = writeln!(failures, "envelope valid/{name}: {msg}");
        }
    }
    assert!(
        saw_worked_example,
        "envelope.json lacks the worked_example case"
    );
    for case in invalid {
        let name = string(case, "name");
        let expected = string(case, "error");
        if !wire::WireError::KINDS.contains(&expected) {
            let _ = writeln!(
                failures,
                "envelope invalid/{name}: unknown error kind {expected:?}"
            );
            continue;
        }
        let frame = bytes(case, "frame_hex");
        match full_decode(&frame) {
            Ok(()) => {
                let _ = writeln!(
                    failures,
                    "envelope invalid/{name}: accepted, expected {expected}"
                );
            }
            Err(err) if err.kind() != expected => {
                let _ = writeln!(
                    failures,
                    "envelope invalid/{name}: got {} ({err}), expected {expected}",
                    err.kind()
                );
            }
            Err(_) => {}
        }
    }
}

/// Envelope decode, then type check, then payload decode: the first error.
fn full_decode(frame: &[u8]) -> Result<(), wire::WireError> {
    let env = wire::decode(frame)?;
    wire::validate_type(&env)?;
    wire::reencode_payload(env.type_id, env.payload, &mut Vec::new())?;
    Ok(())
}

fn check_valid_envelope(case: &Value) -> Result<(), String> {
    let frame = bytes(case, "frame_hex");
    let payload = bytes(case, "payload_hex");
    let expected = Envelope {
        channel: string(case, "channel"),
        key: string(case, "key"),
        flags: u8::try_from(number(case, "flags")).map_err(|e| e.to_string())?,
        type_id: u16::try_from(number(case, "type_id")).map_err(|e| e.to_string())?,
        fingerprint: hex_u64(case, "fingerprint"),
        publisher_id: decimal(case, "publisher_id"),
        seq: decimal(case, "seq"),
        key_seq: decimal(case, "key_seq"),
        send_ts_ns: decimal(case, "send_ts_ns"),
        payload: &payload,
    };
    let env = wire::decode(&frame).map_err(|e| format!("{}: {e}", e.kind()))?;
    if env != expected {
        return Err(format!("decoded {env:?}, expected {expected:?}"));
    }
    full_decode(&frame).map_err(|e| format!("{}: {e}", e.kind()))?;
    let mut again = Vec::new();
    expected
        .encode_into(&mut again)
        .map_err(|e| e.to_string())?;
    if again != frame {
        return Err(format!("encoding gives {}", hex::encode(&again)));
    }
    if catalog::message_type_by_id(env.type_id).map(|t| t.fingerprint) != Some(env.fingerprint) {
        return Err(format!(
            "fingerprint {:#018x} is not the generated one",
            env.fingerprint
        ));
    }
    Ok(())
}

macro_rules! message_files {
    ($file:expr, $failures:expr, $($ty:ty),* $(,)?) => {{
        let full_name = string($file, "message");
        $(
            if full_name == <$ty as SchemaMessage>::TYPE.full_name {
                check_message_file::<$ty>($file, $failures);
                Some(<$ty as SchemaMessage>::TYPE.type_id)
            } else
        )* {
            None
        }
    }};
}

#[test]
fn golden_vectors() {
    let mut failures = String::new();
    let mut types_seen = Vec::new();
    let mut envelope_seen = false;
    for path in vector_files() {
        let file = load(&path);
        if path.file_name().is_some_and(|n| n == "envelope.json") {
            check_envelope_file(&file, &mut failures);
            envelope_seen = true;
            continue;
        }
        let seen = message_files!(
            &file,
            &mut failures,
            v1::MarketData,
            v1::TradingSignal,
            v1::Order,
            v1::Position,
            v1::StrategyCommand,
            v1::CommandAck,
            v1::Heartbeat,
            v1::ReplayRequest,
            v1::ReplayEnd,
            v1::SnapshotRequest,
            v1::SnapshotEnd,
        );
        match seen {
            Some(type_id) => types_seen.push(type_id),
            None => {
                let _ = writeln!(
                    failures,
                    "{}: unknown message {}",
                    path.display(),
                    string(&file, "message")
                );
            }
        }
    }
    assert!(
        envelope_seen,
        "no envelope.json in {}",
        vectors_dir().display()
    );
    for t in tradewire::channels::MESSAGE_TYPES {
        if !types_seen.contains(&t.type_id) {
            let _ = writeln!(failures, "no vector file for {}", t.full_name);
        }
    }
    assert!(failures.is_empty(), "golden vector failures:\n{failures}");
}

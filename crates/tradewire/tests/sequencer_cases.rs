//! The sequencer case table (conformance/vectors/sequencer/cases.json), in Rust; the Python
//! binding runs the same table (tests/test_sequencer.py).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tradewire::transport::{Sequencer, SequencerOptions, Start, Verdict};

const MS: u64 = 1_000_000;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn targets(v: &Value) -> Vec<(String, u64)> {
    v.as_array()
        .expect("targets")
        .iter()
        .map(|t| (s(&t[0]), u(&t[1])))
        .collect()
}

/// Feeds a case's steps; returns what came out, in the table's form.
fn run(case: &Value, defaults: &Value) -> Value {
    let opt = |name: &str| case["options"].get(name).unwrap_or(&defaults[name]).clone();
    let mut seq: Sequencer<String> = Sequencer::new(SequencerOptions {
        start: match opt("start").as_str() {
            Some("earliest") => Start::Earliest,
            _ => Start::Latest,
        },
        recover: opt("recover").as_bool().expect("recover"),
        replay_timeout_ns: u(&opt("replay_timeout_ms")) * MS,
        plausible_jump: u(&opt("plausible_jump")),
        ..SequencerOptions::default()
    });
    let mut delivered = Vec::new();
    let mut asks = Vec::new();
    let mut events = Vec::new();
    for step in case["steps"].as_array().expect("steps") {
        let now = step.get("t").map_or(0, u) * MS;
        let pid = step.get("pid").map_or(0, u);
        match step["op"].as_str().expect("op") {
            "handshake" => seq.on_handshake(
                pid,
                &targets(&step["targets"]),
                step["newer"].as_bool().expect("newer"),
                now,
            ),
            "heartbeat" => seq.on_heartbeat(pid, &targets(&step["targets"]), now),
            op @ ("data" | "replayed") => {
                let key = s(&step["key"]);
                let n = u(&step["n"]);
                let item = step
                    .get("id")
                    .map_or_else(|| format!("{pid:x}:{key}:{n}"), s);
                let verdict = if op == "data" {
                    seq.on_data(pid, &key, n, item, now)
                } else {
                    seq.on_replayed(pid, &key, n, item, now)
                };
                if verdict == Verdict::Next {
                    // Taken back and delivered directly, as the Python binding does.
                    delivered.push(Value::from(seq.pop_ready_back().expect("next")));
                }
            }
            "end" => seq.on_replay_end(
                u(&step["by"]),
                pid,
                &s(&step["key"]),
                u(&step["from"]),
                u(&step["to"]),
                step["unknown"].as_bool().expect("unknown"),
                u(&step["last_seq"]),
                now,
            ),
            "timer" => seq.on_timer(now),
            other => panic!("unknown op {other}"),
        }
        while let Some(item) = seq.pop_ready() {
            delivered.push(Value::from(item));
        }
        while let Some(a) = seq.pop_ask() {
            asks.push(serde_json::json!([a.publisher_id, a.key, a.from, a.to]));
        }
        while let Some(e) = seq.pop_event() {
            events.push(serde_json::json!([
                e.kind.name(),
                e.publisher_id,
                e.key,
                e.first,
                e.last
            ]));
        }
    }
    let st = seq.stats();
    let counters: BTreeMap<&str, u64> = [
        ("duplicates", st.duplicates),
        ("gaps", st.gaps),
        ("missed", st.missed),
        ("recovered", st.recovered),
        ("unrecoverable", st.unrecoverable),
        ("unknown_tails", st.unknown_tails),
        ("restarts", st.restarts),
        ("replay_requests", st.replay_requests),
        ("checks", st.checks),
        ("disowned", st.disowned),
        ("unverified", st.unverified),
        ("stale", st.stale),
    ]
    .into_iter()
    .filter(|(_, v)| *v > 0)
    .collect();
    serde_json::json!({
        "delivered": delivered,
        "asks": asks,
        "events": events,
        "stats": counters,
    })
}

#[test]
fn every_sequencer_case_of_the_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/vectors/sequencer/cases.json");
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("table")).expect("valid JSON");
    let cases = table["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20, "the table lost cases: {}", cases.len());
    let mut failed = Vec::new();
    for case in cases {
        let got = run(case, &table["defaults"]);
        if got != case["expect"] {
            failed.push(format!(
                "{}: {}\n  expected {}\n  got      {}",
                case["name"], case["description"], case["expect"], got
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

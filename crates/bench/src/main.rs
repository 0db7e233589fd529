//! `tradewire-bench`: the Rust peers of `make bench`, raw libzmq beside tradewire.
//!
//! ```text
//! tradewire-bench echo-server --endpoint E --mode raw|typed [--count N]
//! tradewire-bench echo-client --endpoint E --mode raw|typed --count N [--warmup W] [--rate R]
//!                [--samples-out FILE]
//! tradewire-bench pub --endpoint E --mode raw|typed --count N
//! tradewire-bench sub --endpoint E --mode raw|typed --count N
//! tradewire-bench kill-client --endpoint C --count N [--warmup W] [--rate R] [--samples-out F]
//! tradewire-bench codec --count N
//! ```
//!
//! Echo uses one PAIR socket per side and one frame per message in both modes, so the only
//! difference is tradewire's work: envelope + protobuf encode, decode and type check. A
//! typed echo server decodes the MarketData and answers with a new envelope around it.
//! The client prints one JSON line: RTT samples' percentiles (µs) and the message size.
//! `pub`/`sub` report messages per second; typed mode uses the tradewire transport
//! (sequence numbers, replay ring, handshake); raw mode a bare PUB/SUB pair.
//! `kill-client` sends kill switches at a fixed rate to an engine (`tradewire-engine-demo`
//! in `make bench`) and reports the acknowledgement latency percentiles. `codec` times the
//! envelope codec alone (ns per MarketData frame encoded, and decoded + parsed), best of 5.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use prost::Message;
use tradewire::transport::{
    CommandClient, Publisher, PublisherOptions, Subscriber, SubscriberOptions,
};
use tradewire::v1::{command_ack::Outcome, strategy_command, MarketData, StrategyCommand};
use tradewire::wire;

struct Args {
    role: String,
    endpoint: String,
    typed: bool,
    count: u64,
    warmup: u64,
    rate: f64,
    samples_out: String,
}

fn parse() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let role = argv
        .next()
        .ok_or("missing role: echo-server|echo-client|pub|sub|kill-client|codec")?;
    let mut args = Args {
        role,
        endpoint: String::new(),
        typed: true,
        count: 20_000,
        warmup: 2_000,
        rate: 0.0,
        samples_out: String::new(),
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--endpoint" => args.endpoint = value,
            "--mode" => args.typed = value == "typed",
            "--count" => args.count = num(&value)?,
            "--warmup" => args.warmup = num(&value)?,
            "--rate" => args.rate = value.parse().map_err(|e| format!("--rate: {e}"))?,
            "--samples-out" => args.samples_out = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.endpoint.is_empty() && args.role != "codec" {
        return Err("--endpoint is required".into());
    }
    Ok(args)
}

fn tick() -> MarketData {
    MarketData {
        symbol: "AAPL".into(),
        price: 187.52,
        volume: 300.0,
        timestamp_us: 1_764_000_000_000_000,
        exchange: "NASDAQ".into(),
        bid: 187.51,
        ask: 187.53,
        bid_size: 1200.0,
        ask_size: 800.0,
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn typed_frame(msg: &MarketData, seq: u64, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    wire::encode_message(
        "market_data",
        &msg.symbol,
        msg,
        7,
        seq,
        seq,
        now_ns(),
        0,
        out,
    )
    .map_err(|e| e.to_string())
}

fn typed_decode(frame: &[u8]) -> Result<MarketData, String> {
    let env = wire::decode(frame).map_err(|e| e.to_string())?;
    wire::decode_message::<MarketData>(&env).map_err(|e| e.to_string())
}

fn echo_server(a: &Args) -> Result<(), String> {
    let ctx = zmq::Context::new();
    let sock = ctx.socket(zmq::PAIR).map_err(|e| e.to_string())?;
    sock.bind(&a.endpoint).map_err(|e| e.to_string())?;
    println!("{{\"ready\":true}}");
    let mut out = Vec::with_capacity(256);
    let mut seq = 0u64;
    let mut msg = zmq::Message::new();
    loop {
        sock.recv(&mut msg, 0).map_err(|e| e.to_string())?;
        if msg.is_empty() {
            return Ok(()); // the client's stop frame
        }
        if a.typed {
            let tick = typed_decode(&msg)?;
            seq += 1;
            typed_frame(&tick, seq, &mut out)?;
            sock.send(&out[..], 0).map_err(|e| e.to_string())?;
        } else {
            sock.send(&msg[..], 0).map_err(|e| e.to_string())?;
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn echo_client(a: &Args) -> Result<(), String> {
    let ctx = zmq::Context::new();
    let sock = ctx.socket(zmq::PAIR).map_err(|e| e.to_string())?;
    sock.connect(&a.endpoint).map_err(|e| e.to_string())?;
    let base = tick();
    let raw = base.encode_to_vec();
    let mut frame = Vec::with_capacity(256);
    let mut samples = Vec::with_capacity(a.count as usize);
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / a.rate));
    let start = Instant::now();
    let mut reply = zmq::Message::new();
    for i in 0..(a.warmup + a.count) {
        if let Some(step) = interval {
            let due = start + step * (i as u32);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        let t0 = Instant::now();
        if a.typed {
            typed_frame(&base, i + 1, &mut frame)?;
            sock.send(&frame[..], 0).map_err(|e| e.to_string())?;
            sock.recv(&mut reply, 0).map_err(|e| e.to_string())?;
            let back = typed_decode(&reply)?;
            if back.symbol != base.symbol {
                return Err("echo changed the message".into());
            }
        } else {
            sock.send(&raw[..], 0).map_err(|e| e.to_string())?;
            sock.recv(&mut reply, 0).map_err(|e| e.to_string())?;
        }
        if i >= a.warmup {
            samples.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    sock.send(&b""[..], 0).map_err(|e| e.to_string())?;
    let size = if a.typed { frame.len() } else { raw.len() };
    report_samples(a, samples, size)
}

/// Sorts the samples (µs), writes them to `--samples-out` when given and prints one JSON
/// line with their percentiles.
fn report_samples(a: &Args, mut samples: Vec<f64>, size: usize) -> Result<(), String> {
    if samples.is_empty() {
        return Err("no samples".into());
    }
    samples.sort_by(|x, y| x.total_cmp(y));
    if !a.samples_out.is_empty() {
        let text: String = samples.iter().map(|s| format!("{s:.3}\n")).collect();
        std::fs::write(&a.samples_out, text).map_err(|e| e.to_string())?;
    }
    println!(
        "{{\"samples\":{},\"bytes\":{},\"p50_us\":{:.3},\"p99_us\":{:.3},\"p999_us\":{:.3},\"mean_us\":{:.3}}}",
        samples.len(),
        size,
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        percentile(&samples, 99.9),
        samples.iter().sum::<f64>() / samples.len() as f64,
    );
    Ok(())
}

/// Best of 5 rounds of `count` encodes, and of `count` decodes + typed parses (ns/op).
fn codec(a: &Args) -> Result<(), String> {
    let msg = tick();
    let mut frame = Vec::with_capacity(256);
    let count = a.count.max(1);
    let (mut encode_ns, mut decode_ns) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        let t0 = Instant::now();
        for seq in 1..=count {
            typed_frame(std::hint::black_box(&msg), seq, &mut frame)?;
        }
        encode_ns = encode_ns.min(t0.elapsed().as_nanos() as f64 / count as f64);
        let t0 = Instant::now();
        for _ in 0..count {
            let back = typed_decode(std::hint::black_box(&frame))?;
            std::hint::black_box(back);
        }
        decode_ns = decode_ns.min(t0.elapsed().as_nanos() as f64 / count as f64);
    }
    println!(
        "{{\"bytes\":{},\"encode_ns\":{encode_ns:.1},\"decode_ns\":{decode_ns:.1}}}",
        frame.len()
    );
    Ok(())
}

/// Sends `--count` kill switches (after `--warmup`) at `--rate` per second and reports the
/// acknowledgement latency percentiles (µs).
fn kill_client(a: &Args) -> Result<(), String> {
    let mut client = CommandClient::connect(&a.endpoint).map_err(|e| e.to_string())?;
    let interval = Duration::from_secs_f64(1.0 / a.rate.max(1.0));
    let mut samples = Vec::with_capacity(a.count as usize);
    let start = Instant::now();
    for i in 0..(a.warmup + a.count) {
        let due = start + interval * (i as u32);
        while Instant::now() < due {
            std::thread::sleep(Duration::from_micros(50)); // pacing between samples
        }
        let command = StrategyCommand {
            r#type: strategy_command::CommandType::KillSwitch as i32,
            ..Default::default()
        };
        let t0 = Instant::now();
        let ack = client
            .send(command, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        if ack.outcome != Outcome::Applied as i32 {
            return Err(format!("kill switch not applied: {}", ack.reason));
        }
        if i >= a.warmup {
            samples.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    report_samples(a, samples, 0)
}

/// Publishers wait for a line on stdin ("go": the subscriber is live), publish, report,
/// then wait for EOF on stdin so replay stays available while the subscriber drains.
fn publisher(a: &Args) -> Result<(), String> {
    let msg = tick();
    let mut line = String::new();
    let stdin = std::io::stdin();
    if a.typed {
        let options = PublisherOptions {
            // The default ring (100k frames, reused): with unbounded HWMs nothing is dropped.
            sndhwm: 0,
            ..Default::default()
        };
        let publisher =
            Publisher::<MarketData>::bind_with(&a.endpoint, options).map_err(|e| e.to_string())?;
        println!("{{\"ready\":true}}");
        stdin.read_line(&mut line).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        for _ in 0..a.count {
            publisher.publish(&msg).map_err(|e| e.to_string())?;
        }
        report_rate(a.count, t0);
        stdin.read_line(&mut line).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let ctx = zmq::Context::new();
    let sock = ctx.socket(zmq::PUB).map_err(|e| e.to_string())?;
    sock.set_sndhwm(0).map_err(|e| e.to_string())?;
    sock.bind(&a.endpoint).map_err(|e| e.to_string())?;
    println!("{{\"ready\":true}}");
    let raw = msg.encode_to_vec();
    stdin.read_line(&mut line).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    for _ in 0..a.count {
        sock.send(&raw[..], 0).map_err(|e| e.to_string())?;
    }
    report_rate(a.count, t0);
    stdin.read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(())
}

fn subscriber(a: &Args) -> Result<(), String> {
    if a.typed {
        let options = SubscriberOptions {
            rcvhwm: 0,
            ..Default::default()
        };
        let mut sub = Subscriber::<MarketData>::connect_with(&a.endpoint, options)
            .map_err(|e| e.to_string())?;
        println!("{{\"ready\":true}}");
        let mut got = 0u64;
        let mut t0 = None;
        while got < a.count {
            if sub.recv(Duration::from_secs(10)).is_none() {
                break;
            }
            t0.get_or_insert_with(Instant::now);
            got += 1;
        }
        report_rate(got, t0.unwrap_or_else(Instant::now));
        return Ok(());
    }
    let ctx = zmq::Context::new();
    let sock = ctx.socket(zmq::SUB).map_err(|e| e.to_string())?;
    sock.set_rcvhwm(0).map_err(|e| e.to_string())?;
    sock.set_subscribe(b"").map_err(|e| e.to_string())?;
    sock.connect(&a.endpoint).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300)); // raw PUB/SUB has no handshake
    println!("{{\"ready\":true}}");
    let mut msg = zmq::Message::new();
    let mut got = 0u64;
    let mut t0 = None;
    sock.set_rcvtimeo(10_000).map_err(|e| e.to_string())?;
    while got < a.count {
        if sock.recv(&mut msg, 0).is_err() {
            break;
        }
        t0.get_or_insert_with(Instant::now);
        let _ = MarketData::decode(&msg[..]).map_err(|e| e.to_string())?;
        got += 1;
    }
    report_rate(got, t0.unwrap_or_else(Instant::now));
    Ok(())
}

fn report_rate(count: u64, t0: Instant) {
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{{\"count\":{count},\"seconds\":{secs:.6},\"msgs_per_sec\":{:.1}}}",
        count as f64 / secs
    );
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tradewire-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.role.as_str() {
        "echo-server" => echo_server(&args),
        "echo-client" => echo_client(&args),
        "pub" => publisher(&args),
        "sub" => subscriber(&args),
        "kill-client" => kill_client(&args),
        "codec" => codec(&args),
        other => Err(format!("unknown role {other}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tradewire-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

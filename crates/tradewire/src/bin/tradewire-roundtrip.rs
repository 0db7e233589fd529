//! `tradewire-roundtrip`: decodes and re-encodes tradewire frames through the Rust
//! implementation, for cross-language tests and the demo.
//!
//! ```text
//! tradewire-roundtrip             # frames on stdin, results on stdout
//! tradewire-roundtrip --describe  # one line per message type: type_id full_name 0xfingerprint
//! ```
//!
//! Input: records of `u32 little-endian length` + that many bytes, each one full
//! envelope frame. For each record the envelope is decoded, its type id looked up, the
//! payload decoded with prost into the generated struct and re-encoded, and the envelope
//! re-encoded with the same metadata. Output, one record per input record:
//!
//! ```text
//! u32 LE len | status u8 | body        (len = 1 + body length)
//! status 0: body is the re-encoded frame
//! status 1: body is UTF-8 "<kind>: <message>", kind as in WIRE.md section 2
//! ```
//!
//! EOF at a record boundary ends with exit 0; EOF inside a record is an error (exit 1).

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

use tradewire::channels::MESSAGE_TYPES;
use tradewire::wire::{self, Envelope, WireError};

const USAGE: &str = "usage: tradewire-roundtrip [--describe]\n\
    reads records `u32 LE length + frame` on stdin, writes `u32 LE length + status byte + \
    (frame | \"kind: message\")` on stdout";

/// Decodes and re-encodes one frame into `out`.
fn roundtrip(frame: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    let env = wire::decode(frame)?;
    wire::validate_type(&env)?;
    let mut payload = Vec::new();
    wire::reencode_payload(env.type_id, env.payload, &mut payload)?;
    Envelope {
        payload: &payload,
        ..env
    }
    .encode_into(out)
}

/// Reads one record; `Ok(false)` on EOF at a record boundary.
fn read_record(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    if input.fill_buf()?.is_empty() {
        return Ok(false);
    }
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|e| io::Error::new(e.kind(), format!("input ends inside a record length: {e}")))?;
    let len = u64::from(u32::from_le_bytes(len));
    buf.clear();
    // `take` grows the buffer as bytes arrive, so a bogus length cannot force a huge
    // allocation up front.
    let got = input.by_ref().take(len).read_to_end(buf)?;
    if (got as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("input ends inside a record: {len} bytes announced, {got} present"),
        ));
    }
    Ok(true)
}

fn write_response(output: &mut impl Write, status: u8, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response over 4 GiB"))?;
    output.write_all(&len.to_le_bytes())?;
    output.write_all(&[status])?;
    output.write_all(body)?;
    output.flush()
}

fn serve() -> io::Result<()> {
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    let mut frame = Vec::new();
    let mut out = Vec::new();
    while read_record(&mut input, &mut frame)? {
        out.clear();
        match roundtrip(&frame, &mut out) {
            Ok(()) => write_response(&mut output, 0, &out)?,
            Err(err) => {
                let text = format!("{}: {err}", err.kind());
                write_response(&mut output, 1, text.as_bytes())?;
            }
        }
    }
    Ok(())
}

fn describe() -> io::Result<()> {
    let mut output = BufWriter::new(io::stdout().lock());
    for t in MESSAGE_TYPES {
        writeln!(
            output,
            "{} {} {:#018x}",
            t.type_id, t.full_name, t.fingerprint
        )?;
    }
    output.flush()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => serve(),
        ["--describe"] => describe(),
        ["-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("tradewire-roundtrip: unexpected arguments {args:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away: nothing left to answer.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tradewire-roundtrip: {err}");
            ExitCode::FAILURE
        }
    }
}

//! The tradewire envelope: one ZeroMQ frame = topic + 52-byte header + protobuf payload.
//!
//! The byte layout is normative in `conformance/WIRE.md`; this module and the Python
//! `tradewire.wire` implement it and produce identical bytes.
//!
//! ```text
//! channel "/" key NUL | magic "TW" | version | flags | type_id u16 | reserved u16 |
//! fingerprint u64 | publisher_id u64 | seq u64 | key_seq u64 | send_ts_ns u64 |
//! payload_len u32 | payload
//! ```
//!
//! Decoding borrows from the frame and never allocates; encoding reserves the exact
//! size once. No input makes these functions panic.

use thiserror::Error;

use crate::catalog::{self, MessageType, SchemaMessage};

/// Size of the fixed header that follows the topic.
pub const HEADER_SIZE: usize = 52;
/// The two magic bytes at the start of the header: ASCII `TW`.
pub const MAGIC: [u8; 2] = *b"TW";
/// The format version this module speaks.
pub const VERSION: u8 = 1;
/// Flag bit 0: resent from a replay buffer.
pub const FLAG_REPLAY: u8 = 0x01;
/// Flag bit 1: part of a last-value snapshot.
pub const FLAG_SNAPSHOT: u8 = 0x02;
/// Longest topic, the terminating NUL included.
pub const MAX_TOPIC: usize = 99;
/// Longest key, in bytes.
pub const MAX_KEY: usize = 64;
/// Longest channel name, in bytes.
pub const MAX_CHANNEL: usize = 32;
/// Default maximum `payload_len` accepted by [`decode`]: 16 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Where a frame ended too early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Truncation {
    /// The frame ended before the topic's NUL.
    #[error("frame of {frame_len} bytes ends before the topic's NUL")]
    Topic {
        /// Length of the whole frame.
        frame_len: usize,
    },
    /// The frame ended inside the fixed header.
    #[error("header needs {HEADER_SIZE} bytes after the topic, frame has {available}")]
    Header {
        /// Bytes present after the topic.
        available: usize,
    },
    /// The frame ended before `payload_len` payload bytes.
    #[error("payload_len is {payload_len}, only {available} bytes follow the header")]
    Payload {
        /// The header's `payload_len`.
        payload_len: usize,
        /// Bytes present after the header.
        available: usize,
    },
}

/// What is wrong with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// No NUL within the first [`MAX_TOPIC`] bytes.
    #[error("no NUL within the first {MAX_TOPIC} bytes")]
    NoNul,
    /// The topic has no `/` between channel and key.
    #[error("topic of {topic_len} bytes has no '/'")]
    NoSlash {
        /// Length of the topic without its NUL.
        topic_len: usize,
    },
    /// The channel name is not 1..=32 bytes of `[a-z0-9_]`.
    #[error("channel name of {len} bytes is not 1..={MAX_CHANNEL} bytes of [a-z0-9_]")]
    BadChannel {
        /// Length of the channel name.
        len: usize,
    },
    /// The key is longer than [`MAX_KEY`] bytes.
    #[error("key is {len} bytes, more than {MAX_KEY}")]
    KeyTooLong {
        /// Length of the key.
        len: usize,
    },
    /// The key is not valid UTF-8.
    #[error("key is not UTF-8 (invalid byte at offset {valid_up_to})")]
    KeyNotUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The key contains a NUL byte (only possible when encoding).
    #[error("key contains NUL at byte {at}")]
    KeyHasNul {
        /// Offset of the NUL in the key.
        at: usize,
    },
}

/// A frame that is not valid tradewire. Variants map 1:1 to the error kinds of
/// WIRE.md section 2; [`WireError::kind`] gives the kind's name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// `truncated`: the frame ends too early.
    #[error("{0}")]
    Truncated(Truncation),
    /// `bad_topic`: the topic is malformed.
    #[error("{0}")]
    BadTopic(TopicError),
    /// `bad_magic`: the magic bytes are not `TW`.
    #[error("magic is {found:02x?}, expected [54, 57] (\"TW\")")]
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// `unsupported_version`: the version is not [`VERSION`].
    #[error("format version {found}, this implementation speaks {VERSION}")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// `oversized`: the payload is longer than allowed.
    #[error("payload_len {payload_len} exceeds the maximum of {max} bytes")]
    Oversized {
        /// The payload length.
        payload_len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// `trailing_bytes`: bytes follow the payload.
    #[error("{extra} bytes follow the {payload_len}-byte payload")]
    TrailingBytes {
        /// Bytes after the payload.
        extra: usize,
        /// The header's `payload_len`.
        payload_len: usize,
    },
    /// `unknown_type`: the type id is 0, not in the schema, or not the expected one.
    #[error("{}", unknown_type_message(*type_id, expected))]
    UnknownType {
        /// The type id found.
        type_id: u16,
        /// The type the caller asked for, if any.
        expected: Option<MessageType>,
    },
    /// `bad_payload`: the payload is not a valid encoding of its message type.
    #[error("payload is not a valid {type_name}: {source}")]
    BadPayload {
        /// Full name of the message type.
        type_name: &'static str,
        /// The protobuf decoding error.
        #[source]
        source: prost::DecodeError,
    },
    /// `schema_mismatch` (strict mode only): the fingerprint is not the local one.
    #[error("{type_name} fingerprint {found:#018x} differs from local {local:#018x}")]
    SchemaMismatch {
        /// Full name of the message type.
        type_name: &'static str,
        /// Fingerprint in the frame.
        found: u64,
        /// Fingerprint of the local schema.
        local: u64,
    },
}

fn unknown_type_message(type_id: u16, expected: &Option<MessageType>) -> String {
    match (catalog::message_type_by_id(type_id), expected) {
        (Some(found), Some(expected)) => format!(
            "type id {type_id} is {}, expected {} (type id {})",
            found.full_name, expected.full_name, expected.type_id
        ),
        (None, Some(expected)) => format!(
            "type id {type_id} is not a message type of this schema, expected {} (type id {})",
            expected.full_name, expected.type_id
        ),
        (_, None) => format!("type id {type_id} is not a message type of this schema"),
    }
}

impl WireError {
    /// Every kind name, in the order WIRE.md section 2 checks them.
    pub const KINDS: [&'static str; 9] = [
        "truncated",
        "bad_topic",
        "bad_magic",
        "unsupported_version",
        "oversized",
        "trailing_bytes",
        "unknown_type",
        "bad_payload",
        "schema_mismatch",
    ];

    /// The WIRE.md kind name: `truncated`, `bad_topic`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::Truncated(_) => "truncated",
            WireError::BadTopic(_) => "bad_topic",
            WireError::BadMagic { .. } => "bad_magic",
            WireError::UnsupportedVersion { .. } => "unsupported_version",
            WireError::Oversized { .. } => "oversized",
            WireError::TrailingBytes { .. } => "trailing_bytes",
            WireError::UnknownType { .. } => "unknown_type",
            WireError::BadPayload { .. } => "bad_payload",
            WireError::SchemaMismatch { .. } => "schema_mismatch",
        }
    }
}

impl From<Truncation> for WireError {
    fn from(t: Truncation) -> Self {
        WireError::Truncated(t)
    }
}

impl From<TopicError> for WireError {
    fn from(t: TopicError) -> Self {
        WireError::BadTopic(t)
    }
}

/// Checks a channel name: 1..=32 bytes of `[a-z0-9_]`.
pub fn validate_channel(channel: &str) -> Result<(), WireError> {
    check_channel(channel.as_bytes()).map_err(WireError::BadTopic)
}

/// Checks a key: at most 64 bytes, no NUL.
pub fn validate_key(key: &str) -> Result<(), WireError> {
    if key.len() > MAX_KEY {
        return Err(TopicError::KeyTooLong { len: key.len() }.into());
    }
    if let Some(at) = key.bytes().position(|b| b == 0) {
        return Err(TopicError::KeyHasNul { at }.into());
    }
    Ok(())
}

fn check_channel(channel: &[u8]) -> Result<(), TopicError> {
    let ok = (1..=MAX_CHANNEL).contains(&channel.len())
        && channel
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TopicError::BadChannel { len: channel.len() })
    }
}

/// Appends the topic `channel "/" key NUL` to `out`, validated. With an empty key this
/// is the subscription prefix for keyless messages of the channel.
pub fn write_topic(channel: &str, key: &str, out: &mut Vec<u8>) -> Result<(), WireError> {
    validate_channel(channel)?;
    validate_key(key)?;
    out.reserve(channel.len() + key.len() + 2);
    put_topic(channel, key, out);
    Ok(())
}

fn put_topic(channel: &str, key: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(channel.as_bytes());
    out.push(b'/');
    out.extend_from_slice(key.as_bytes());
    out.push(0);
}

/// One decoded frame, borrowing from it. The payload is left encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Envelope<'a> {
    /// Channel name.
    pub channel: &'a str,
    /// Topic key; empty for keyless messages.
    pub key: &'a str,
    /// Flag bits ([`FLAG_REPLAY`], [`FLAG_SNAPSHOT`]); unknown bits are kept.
    pub flags: u8,
    /// Message type id.
    pub type_id: u16,
    /// Schema fingerprint of the payload's message type, as sent.
    pub fingerprint: u64,
    /// Publisher process id.
    pub publisher_id: u64,
    /// Per (publisher, channel) sequence.
    pub seq: u64,
    /// Per (publisher, channel, key) sequence.
    pub key_seq: u64,
    /// Sender clock, nanoseconds since the Unix epoch.
    pub send_ts_ns: u64,
    /// The protobuf payload.
    pub payload: &'a [u8],
}

/// Sequential little-endian reader over a byte slice; never panics.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

impl<'a> Envelope<'a> {
    /// Decodes a frame with the default payload limit ([`DEFAULT_MAX_PAYLOAD`]).
    pub fn decode(frame: &'a [u8]) -> Result<Self, WireError> {
        decode_with_limit(frame, DEFAULT_MAX_PAYLOAD)
    }

    /// Bytes of the whole frame this envelope encodes to.
    pub fn encoded_len(&self) -> usize {
        topic_len(self.channel, self.key) + HEADER_SIZE + self.payload.len()
    }

    /// Appends the frame to `out`. Validates channel, key, type id (not 0) and payload
    /// length (fits a u32) first; on error nothing is written.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let header = Header::new(self, self.payload.len())?;
        out.reserve(self.encoded_len());
        header.write(self.channel, self.key, out);
        out.extend_from_slice(self.payload);
        Ok(())
    }

    /// The frame as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// True when [`FLAG_REPLAY`] is set.
    pub fn is_replay(&self) -> bool {
        self.flags & FLAG_REPLAY != 0
    }

    /// True when [`FLAG_SNAPSHOT`] is set.
    pub fn is_snapshot(&self) -> bool {
        self.flags & FLAG_SNAPSHOT != 0
    }
}

fn topic_len(channel: &str, key: &str) -> usize {
    channel.len() + key.len() + 2
}

/// Validated header fields, ready to write.
struct Header<'e> {
    env: &'e Envelope<'e>,
    payload_len: u32,
}

impl<'e> Header<'e> {
    fn new(env: &'e Envelope<'e>, payload_len: usize) -> Result<Self, WireError> {
        validate_channel(env.channel)?;
        validate_key(env.key)?;
        if env.type_id == 0 {
            return Err(WireError::UnknownType {
                type_id: 0,
                expected: None,
            });
        }
        let payload_len = u32::try_from(payload_len).map_err(|_| WireError::Oversized {
            payload_len: payload_len as u64,
            max: u64::from(u32::MAX),
        })?;
        Ok(Header { env, payload_len })
    }

    /// Writes topic and header (not the payload).
    fn write(&self, channel: &str, key: &str, out: &mut Vec<u8>) {
        let e = self.env;
        put_topic(channel, key, out);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(e.flags);
        out.extend_from_slice(&e.type_id.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&e.fingerprint.to_le_bytes());
        out.extend_from_slice(&e.publisher_id.to_le_bytes());
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.key_seq.to_le_bytes());
        out.extend_from_slice(&e.send_ts_ns.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
    }
}

/// Decodes a frame with the default payload limit ([`DEFAULT_MAX_PAYLOAD`]).
///
/// Checks in the order of WIRE.md section 2, up to `trailing_bytes`; the type and
/// payload checks are [`validate_type`] and [`decode_message`].
pub fn decode(frame: &[u8]) -> Result<Envelope<'_>, WireError> {
    decode_with_limit(frame, DEFAULT_MAX_PAYLOAD)
}

/// Decodes a frame, rejecting a `payload_len` above `max_payload` as `oversized`.
pub fn decode_with_limit(frame: &[u8], max_payload: usize) -> Result<Envelope<'_>, WireError> {
    // Topic: NUL within the first MAX_TOPIC bytes.
    let search = frame.get(..MAX_TOPIC).unwrap_or(frame);
    let Some(nul) = search.iter().position(|&b| b == 0) else {
        return Err(if frame.len() < MAX_TOPIC {
            Truncation::Topic {
                frame_len: frame.len(),
            }
            .into()
        } else {
            TopicError::NoNul.into()
        });
    };
    let (topic, rest) = frame.split_at_checked(nul).unwrap_or((frame, &[]));
    let rest = rest.get(1..).unwrap_or(&[]);
    let Some(slash) = topic.iter().position(|&b| b == b'/') else {
        return Err(TopicError::NoSlash {
            topic_len: topic.len(),
        }
        .into());
    };
    let (channel, key) = topic.split_at_checked(slash).unwrap_or((topic, &[]));
    let key = key.get(1..).unwrap_or(&[]);
    check_channel(channel)?;
    if key.len() > MAX_KEY {
        return Err(TopicError::KeyTooLong { len: key.len() }.into());
    }
    let key = std::str::from_utf8(key).map_err(|e| TopicError::KeyNotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    // `check_channel` admitted ASCII only.
    let channel =
        std::str::from_utf8(channel).map_err(|_| TopicError::BadChannel { len: channel.len() })?;

    // Fixed header.
    let Some((header, body)) = rest.split_first_chunk::<HEADER_SIZE>() else {
        return Err(Truncation::Header {
            available: rest.len(),
        }
        .into());
    };
    let mut r = Reader(header);
    let truncated = || WireError::Truncated(Truncation::Header { available: 0 });
    let magic: [u8; 2] = r.array().ok_or_else(truncated)?;
    let [version, flags]: [u8; 2] = r.array().ok_or_else(truncated)?;
    let type_id = u16::from_le_bytes(r.array().ok_or_else(truncated)?);
    let _reserved: [u8; 2] = r.array().ok_or_else(truncated)?;
    let fingerprint = u64::from_le_bytes(r.array().ok_or_else(truncated)?);
    let publisher_id = u64::from_le_bytes(r.array().ok_or_else(truncated)?);
    let seq = u64::from_le_bytes(r.array().ok_or_else(truncated)?);
    let key_seq = u64::from_le_bytes(r.array().ok_or_else(truncated)?);
    let send_ts_ns = u64::from_le_bytes(r.array().ok_or_else(truncated)?);
    let payload_len = u32::from_le_bytes(r.array().ok_or_else(truncated)?);
    if magic != MAGIC {
        return Err(WireError::BadMagic { found: magic });
    }
    if version != VERSION {
        return Err(WireError::UnsupportedVersion { found: version });
    }
    let max = u64::try_from(max_payload).unwrap_or(u64::MAX);
    if u64::from(payload_len) > max {
        return Err(WireError::Oversized {
            payload_len: u64::from(payload_len),
            max,
        });
    }
    // payload_len <= max_payload, a usize, so this conversion is lossless.
    let payload_len = usize::try_from(payload_len).unwrap_or(usize::MAX);
    let Some((payload, trailing)) = body.split_at_checked(payload_len) else {
        return Err(Truncation::Payload {
            payload_len,
            available: body.len(),
        }
        .into());
    };
    if !trailing.is_empty() {
        return Err(WireError::TrailingBytes {
            extra: trailing.len(),
            payload_len,
        });
    }
    Ok(Envelope {
        channel,
        key,
        flags,
        type_id,
        fingerprint,
        publisher_id,
        seq,
        key_seq,
        send_ts_ns,
        payload,
    })
}

/// The schema's message type for the envelope's `type_id`; `unknown_type` for 0 or an
/// id the schema does not have.
pub fn validate_type(env: &Envelope<'_>) -> Result<MessageType, WireError> {
    catalog::message_type_by_id(env.type_id).ok_or(WireError::UnknownType {
        type_id: env.type_id,
        expected: None,
    })
}

/// Encodes `msg` as one frame appended to `out`, with its schema type id and
/// fingerprint. The payload is encoded straight into `out` (one exact reservation).
#[allow(clippy::too_many_arguments)]
pub fn encode_message<M: SchemaMessage>(
    channel: &str,
    key: &str,
    msg: &M,
    publisher_id: u64,
    seq: u64,
    key_seq: u64,
    send_ts_ns: u64,
    flags: u8,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let env = Envelope {
        channel,
        key,
        flags,
        type_id: M::TYPE.type_id,
        fingerprint: M::TYPE.fingerprint,
        publisher_id,
        seq,
        key_seq,
        send_ts_ns,
        payload: &[],
    };
    let payload_len = msg.encoded_len();
    let header = Header::new(&env, payload_len)?;
    out.reserve(topic_len(channel, key) + HEADER_SIZE + payload_len);
    header.write(channel, key, out);
    msg.encode_raw(out);
    Ok(())
}

/// Decodes the payload as `M`: `unknown_type` when the envelope's type id is not
/// `M`'s, `bad_payload` when prost rejects it. A different fingerprint is accepted
/// (see [`decode_message_strict`]).
pub fn decode_message<M: SchemaMessage>(env: &Envelope<'_>) -> Result<M, WireError> {
    if env.type_id != M::TYPE.type_id {
        return Err(WireError::UnknownType {
            type_id: env.type_id,
            expected: Some(M::TYPE),
        });
    }
    M::decode(env.payload).map_err(|source| WireError::BadPayload {
        type_name: M::TYPE.full_name,
        source,
    })
}

/// Like [`decode_message`], then `schema_mismatch` when the fingerprint differs from
/// the local schema's (strict mode).
pub fn decode_message_strict<M: SchemaMessage>(env: &Envelope<'_>) -> Result<M, WireError> {
    let msg = decode_message(env)?;
    if env.fingerprint != M::TYPE.fingerprint {
        return Err(WireError::SchemaMismatch {
            type_name: M::TYPE.full_name,
            found: env.fingerprint,
            local: M::TYPE.fingerprint,
        });
    }
    Ok(msg)
}

/// Decodes a payload of the given type id into its generated struct and appends the
/// struct's prost re-encoding to `out`, without knowing the type statically (relays,
/// conformance tools). Returns the message type; `unknown_type` / `bad_payload` errors
/// as [`validate_type`] / [`decode_message`].
pub fn reencode_payload(
    type_id: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<MessageType, WireError> {
    let codec = crate::channels::CODECS
        .iter()
        .find(|(t, _)| t.type_id == type_id)
        .ok_or(WireError::UnknownType {
            type_id,
            expected: None,
        })?;
    (codec.1)(payload, out)?;
    Ok(codec.0)
}

/// Decodes a payload with prost and appends its re-encoding (see `channels::CODECS`).
pub type Reencode = fn(&[u8], &mut Vec<u8>) -> Result<(), WireError>;

/// Decode `payload` as `M` and append its prost re-encoding to `out`.
pub fn reencode<M: SchemaMessage>(payload: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    let msg = M::decode(payload).map_err(|source| WireError::BadPayload {
        type_name: M::TYPE.full_name,
        source,
    })?;
    out.reserve(msg.encoded_len());
    msg.encode_raw(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{MARKET_DATA_TYPE, MESSAGE_TYPES};
    use crate::v1;
    use prost::Message;

    const PUBLISHER: u64 = 0x0102_0304_0506_0708;
    const TS: u64 = 1_700_000_000_000_000_000;

    fn aapl() -> v1::MarketData {
        v1::MarketData {
            symbol: "AAPL".into(),
            price: 187.5,
            ..Default::default()
        }
    }

    fn worked_example() -> Vec<u8> {
        let mut out = Vec::new();
        encode_message(
            "market_data",
            "AAPL",
            &aapl(),
            PUBLISHER,
            1,
            1,
            TS,
            0,
            &mut out,
        )
        .unwrap();
        out
    }

    fn topic_len_of(frame: &[u8]) -> usize {
        frame.iter().position(|&b| b == 0).unwrap() + 1
    }

    fn patched(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        f
    }

    fn frame_with_payload(type_id: u16, payload: &[u8]) -> Vec<u8> {
        Envelope {
            channel: "market_data",
            key: "AAPL",
            flags: 0,
            type_id,
            fingerprint: 1,
            publisher_id: 1,
            seq: 1,
            key_seq: 1,
            send_ts_ns: 1,
            payload,
        }
        .to_vec()
        .unwrap()
    }

    /// decode, then validate_type, then decode the payload: the first error's kind.
    fn full_check(frame: &[u8]) -> Result<(), &'static str> {
        let env = decode(frame).map_err(|e| e.kind())?;
        validate_type(&env).map_err(|e| e.kind())?;
        reencode_payload(env.type_id, env.payload, &mut Vec::new()).map_err(|e| e.kind())?;
        Ok(())
    }

    #[test]
    fn worked_example_bytes() {
        let frame = worked_example();
        let mut expected = b"market_data/AAPL\0".to_vec();
        expected.extend_from_slice(&[0x54, 0x57, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00]);
        expected.extend_from_slice(&MARKET_DATA_TYPE.fingerprint.to_le_bytes());
        expected.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17]);
        expected.extend_from_slice(&[0x0f, 0, 0, 0]);
        expected.extend_from_slice(&[
            0x0a, 0x04, 0x41, 0x41, 0x50, 0x4c, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x67,
            0x40,
        ]);
        assert_eq!(frame, expected);
        assert_eq!(frame.len(), 17 + HEADER_SIZE + 15);
    }

    #[test]
    fn round_trip() {
        let frame = worked_example();
        let env = decode(&frame).unwrap();
        assert_eq!(env.channel, "market_data");
        assert_eq!(env.key, "AAPL");
        assert_eq!(env.flags, 0);
        assert_eq!(env.type_id, 1);
        assert_eq!(env.fingerprint, MARKET_DATA_TYPE.fingerprint);
        assert_eq!(env.publisher_id, PUBLISHER);
        assert_eq!((env.seq, env.key_seq, env.send_ts_ns), (1, 1, TS));
        assert_eq!(validate_type(&env), Ok(MARKET_DATA_TYPE));
        let msg: v1::MarketData = decode_message(&env).unwrap();
        assert_eq!(msg, aapl());
        let strict: v1::MarketData = decode_message_strict(&env).unwrap();
        assert_eq!(strict, aapl());
        assert_eq!(env.encoded_len(), frame.len());
        let mut again = Vec::new();
        env.encode_into(&mut again).unwrap();
        assert_eq!(again, frame);
        assert_eq!(again.capacity(), frame.len(), "exact reservation");

        let heartbeat = v1::Heartbeat {
            channel: "market_data".into(),
            last_seq: 41,
            timestamp_us: -5,
            last_key_seq: [("AAPL".to_string(), 3), ("日本".to_string(), u64::MAX)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let mut out = Vec::new();
        let flags = FLAG_REPLAY | FLAG_SNAPSHOT | 0xf0;
        encode_message(
            "market_data",
            "",
            &heartbeat,
            u64::MAX,
            0,
            0,
            u64::MAX,
            flags,
            &mut out,
        )
        .unwrap();
        let env = decode(&out).unwrap();
        assert_eq!(env.key, "");
        assert!(env.is_replay() && env.is_snapshot());
        assert_eq!(env.flags, flags);
        assert_eq!(env.publisher_id, u64::MAX);
        assert_eq!(decode_message::<v1::Heartbeat>(&env).unwrap(), heartbeat);
        assert_eq!(env.to_vec().unwrap(), out);
    }

    #[test]
    fn negative_zero_is_serialized() {
        // Needs the patched prost-derive (crates/vendor/prost-derive).
        let msg = v1::Position {
            quantity: -0.0,
            ..Default::default()
        };
        assert_eq!(msg.encode_to_vec(), [0x11, 0, 0, 0, 0, 0, 0, 0, 0x80]);
        assert!(v1::Position::default().encode_to_vec().is_empty());
    }

    #[test]
    fn every_error_kind() {
        let good = worked_example();
        let t = topic_len_of(&good);
        let rest = &good[t..];
        let with_topic = |topic: &[u8]| [topic, rest].concat();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "truncated"),
            ("no nul", b"market_data/AAPL".to_vec(), "truncated"),
            ("header cut", good[..t + 20].to_vec(), "truncated"),
            ("header cut at 51", good[..t + 51].to_vec(), "truncated"),
            ("payload cut", good[..good.len() - 1].to_vec(), "truncated"),
            (
                "no nul in 99",
                [b"market_data/".as_slice(), &[b'A'; 120]].concat(),
                "bad_topic",
            ),
            ("99 bytes, no nul", vec![b'a'; 99], "bad_topic"),
            ("98 bytes, no nul", vec![b'a'; 98], "truncated"),
            ("no slash", with_topic(b"market_data\0"), "bad_topic"),
            ("uppercase", with_topic(b"Market_data/AAPL\0"), "bad_topic"),
            ("empty channel", with_topic(b"/AAPL\0"), "bad_topic"),
            (
                "channel 33",
                with_topic(&[&[b'a'; 33][..], b"/\0"].concat()),
                "bad_topic",
            ),
            (
                "key 65",
                with_topic(&[&b"market_data/"[..], &[b'K'; 65], b"\0"].concat()),
                "bad_topic",
            ),
            (
                "key not utf8",
                with_topic(b"market_data/\xff\xfe\0"),
                "bad_topic",
            ),
            ("bad magic", patched(&good, t, b"XW"), "bad_magic"),
            (
                "version 2",
                patched(&good, t + 2, &[2]),
                "unsupported_version",
            ),
            (
                "version 0",
                patched(&good, t + 2, &[0]),
                "unsupported_version",
            ),
            (
                "oversized",
                patched(
                    &good,
                    t + 48,
                    &(DEFAULT_MAX_PAYLOAD as u32 + 1).to_le_bytes(),
                ),
                "oversized",
            ),
            (
                "u32 max",
                patched(&good, t + 48, &u32::MAX.to_le_bytes()),
                "oversized",
            ),
            ("trailing", [&good[..], &[0]].concat(), "trailing_bytes"),
            ("type 0", patched(&good, t + 4, &[0, 0]), "unknown_type"),
            (
                "type 999",
                patched(&good, t + 4, &999u16.to_le_bytes()),
                "unknown_type",
            ),
            (
                "garbage",
                frame_with_payload(1, b"\xff\xff\xff\xff"),
                "bad_payload",
            ),
            (
                "overrun",
                frame_with_payload(1, b"\x0a\x05AB"),
                "bad_payload",
            ),
            (
                "wire type 7",
                frame_with_payload(1, b"\x0f\x01"),
                "bad_payload",
            ),
            (
                "bad utf8",
                frame_with_payload(1, b"\x0a\x02\xc3\x28"),
                "bad_payload",
            ),
        ];
        for (name, frame, kind) in cases {
            assert_eq!(full_check(&frame), Err(kind), "{name}");
        }
        // Exactly the payload limit is fine; one over is not.
        let env = decode(&good).unwrap();
        assert!(decode_with_limit(&good, env.payload.len()).is_ok());
        let err = decode_with_limit(&good, env.payload.len() - 1).unwrap_err();
        assert_eq!(err.kind(), "oversized");
        assert!(
            err.to_string().contains("15") && err.to_string().contains("14"),
            "{err}"
        );

        // schema_mismatch, strict only.
        let other = patched(&good, t + 8, &[0xee; 8]);
        let env = decode(&other).unwrap();
        assert!(decode_message::<v1::MarketData>(&env).is_ok());
        let err = decode_message_strict::<v1::MarketData>(&env).unwrap_err();
        assert_eq!(err.kind(), "schema_mismatch");
        // Typed decode of another type is unknown_type.
        let err = decode_message::<v1::Order>(&decode(&good).unwrap()).unwrap_err();
        assert_eq!(err.kind(), "unknown_type");
        assert!(err.to_string().contains("tradewire.v1.Order"), "{err}");
        // bad_payload comes before schema_mismatch.
        let bad = patched(&frame_with_payload(1, b"\xff"), t + 8, &[0xee; 8]);
        let err = decode_message_strict::<v1::MarketData>(&decode(&bad).unwrap()).unwrap_err();
        assert_eq!(err.kind(), "bad_payload");
    }

    #[test]
    fn check_order() {
        let good = worked_example();
        let t = topic_len_of(&good);
        // Bad topic wins over a truncated header; bad magic over bad version and size.
        // (The topic is parsed first, as the Python implementation does.)
        let frame = [&b"BAD/x\0"[..], &good[t..t + 10]].concat();
        assert_eq!(full_check(&frame), Err("bad_topic"));
        let frame = [&b"bad/x\0"[..], &good[t..t + 10]].concat();
        assert_eq!(full_check(&frame), Err("truncated"));
        let mut frame = patched(&good, t, b"XX");
        frame[t + 2] = 9;
        frame[t + 48..t + 52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(full_check(&frame), Err("bad_magic"));
        // Oversized is checked before the payload is looked at.
        let frame = patched(&good[..t + HEADER_SIZE], t + 48, &u32::MAX.to_le_bytes());
        assert_eq!(full_check(&frame), Err("oversized"));
    }

    #[test]
    fn encode_validates() {
        let mut out = b"keep".to_vec();
        let bad = |channel: &'static str, key: &'static str, type_id: u16| Envelope {
            channel,
            key,
            flags: 0,
            type_id,
            fingerprint: 0,
            publisher_id: 0,
            seq: 0,
            key_seq: 0,
            send_ts_ns: 0,
            payload: b"",
        };
        let long_key = "K".repeat(65);
        let long_key: &'static str = Box::leak(long_key.into_boxed_str());
        for (env, kind) in [
            (bad("", "", 1), "bad_topic"),
            (bad("Market", "", 1), "bad_topic"),
            (bad("market-data", "", 1), "bad_topic"),
            (bad("abcdefghijabcdefghijabcdefghijabc", "", 1), "bad_topic"),
            (bad("m", long_key, 1), "bad_topic"),
            (bad("m", "a\0b", 1), "bad_topic"),
            (bad("m", "", 0), "unknown_type"),
        ] {
            assert_eq!(
                env.encode_into(&mut out).unwrap_err().kind(),
                kind,
                "{env:?}"
            );
            assert_eq!(out, b"keep", "nothing written on error");
        }
        let longest = Envelope {
            key: &long_key[1..],
            ..bad("abcdefghijabcdefghijabcdefghijab", "", 1)
        };
        let frame = longest.to_vec().unwrap();
        assert_eq!(topic_len_of(&frame), 32 + 1 + 64 + 1);
        assert_eq!(decode(&frame).unwrap(), longest);

        let mut topic = Vec::new();
        write_topic("market_data", "", &mut topic).unwrap();
        assert_eq!(topic, b"market_data/\0");
        assert!(write_topic("x/y", "", &mut topic).is_err());
    }

    #[test]
    fn kinds_and_messages() {
        let errors = [
            WireError::Truncated(Truncation::Topic { frame_len: 3 }),
            WireError::BadTopic(TopicError::NoNul),
            WireError::BadMagic { found: *b"XW" },
            WireError::UnsupportedVersion { found: 2 },
            WireError::Oversized {
                payload_len: 20,
                max: 10,
            },
            WireError::TrailingBytes {
                extra: 1,
                payload_len: 15,
            },
            WireError::UnknownType {
                type_id: 999,
                expected: None,
            },
            WireError::BadPayload {
                type_name: "tradewire.v1.MarketData",
                source: v1::MarketData::decode(&b"\xff"[..]).unwrap_err(),
            },
            WireError::SchemaMismatch {
                type_name: "tradewire.v1.MarketData",
                found: 1,
                local: 2,
            },
        ];
        for (err, kind) in errors.iter().zip(WireError::KINDS) {
            assert_eq!(err.kind(), kind);
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(
            errors[6].to_string(),
            "type id 999 is not a message type of this schema"
        );
    }

    #[test]
    fn codecs_cover_the_catalog() {
        assert_eq!(crate::channels::CODECS.len(), MESSAGE_TYPES.len());
        for t in MESSAGE_TYPES {
            let mut out = Vec::new();
            assert_eq!(reencode_payload(t.type_id, b"", &mut out), Ok(*t));
            assert!(out.is_empty());
        }
        assert_eq!(
            reencode_payload(0, b"", &mut Vec::new())
                .unwrap_err()
                .kind(),
            "unknown_type"
        );
    }

    /// xorshift64*: deterministic pseudo-random numbers without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn decode_never_panics() {
        let mut frames = vec![worked_example()];
        let mut hb = Vec::new();
        let msg = v1::Heartbeat {
            channel: "x".into(),
            ..Default::default()
        };
        encode_message("market_data", "", &msg, 1, 0, 0, 1, 0, &mut hb).unwrap();
        frames.push(hb);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seen_ok = 0;
        for base in &frames {
            // Every truncation.
            for n in 0..base.len() {
                assert!(full_check(&base[..n]).is_err());
            }
            // Random mutations: byte flips, insertions, deletions, splices.
            for _ in 0..20_000 {
                let mut f = base.clone();
                for _ in 0..=rng.below(4) {
                    match rng.below(4) {
                        0 if !f.is_empty() => {
                            let i = rng.below(f.len());
                            f[i] = rng.next() as u8;
                        }
                        1 => {
                            let i = rng.below(f.len() + 1);
                            f.insert(i, rng.next() as u8);
                        }
                        2 if !f.is_empty() => {
                            let i = rng.below(f.len());
                            f.remove(i);
                        }
                        _ => {
                            let i = rng.below(f.len() + 1);
                            f.truncate(i);
                        }
                    }
                }
                let _ = decode_with_limit(&f, rng.below(64));
                if full_check(&f).is_ok() {
                    seen_ok += 1;
                    let env = decode(&f).unwrap();
                    assert_eq!(env.to_vec().unwrap().len(), f.len());
                }
            }
            // Random bytes.
            for _ in 0..5_000 {
                let len = rng.below(200);
                let f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let _ = full_check(&f);
            }
        }
        assert!(seen_ok > 0, "some mutations stay valid");
    }
}

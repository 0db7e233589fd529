//! The schema catalog: message types (envelope `type_id` + fingerprint) and channels.
//!
//! The values live in [`crate::channels`], generated from `schema/` by tradewire codegen;
//! this module defines their types and the lookups over them.

use crate::channels::{CHANNELS, MESSAGE_TYPES};

/// How a channel moves its messages (`tradewire.v1.Pattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// One publisher binds, any number of subscribers connect (ZMQ PUB/SUB).
    PubSub,
    /// Request with an acknowledgement (ZMQ DEALER/ROUTER).
    Command,
}

/// A message type of the schema, as it appears in the envelope header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// Envelope type id, the `(tradewire.v1.type_id)` option; never 0.
    pub type_id: u16,
    /// Fully qualified protobuf name, e.g. `tradewire.v1.MarketData`.
    pub full_name: &'static str,
    /// Schema fingerprint (WIRE.md section 3).
    pub fingerprint: u64,
}

/// A channel declared in `schema/tradewire/v1/channels.proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channel {
    /// Channel name, the first part of the topic: `[a-z0-9_]{1,32}`.
    pub name: &'static str,
    /// The message carried.
    pub message: MessageType,
    /// How messages move.
    pub pattern: Pattern,
    /// Name of the message's string field that is the topic key; empty when keyless.
    pub key_field: &'static str,
    /// True when the latest message per key is the state (last-value cache).
    pub last_value: bool,
    /// For command channels: the acknowledgement message.
    pub reply: Option<MessageType>,
    /// One line for humans.
    pub description: &'static str,
}

/// A generated protobuf message with its schema metadata.
pub trait SchemaMessage: prost::Message + Default {
    /// The message's type id, name and fingerprint.
    const TYPE: MessageType;
}

/// A message carried on a keyed channel: its value of the channel's key field.
pub trait Keyed {
    /// The topic key (e.g. the symbol).
    fn key(&self) -> &str;
}

/// The message type with envelope id `type_id`, if the schema has one (never for 0).
pub fn message_type_by_id(type_id: u16) -> Option<MessageType> {
    MESSAGE_TYPES
        .iter()
        .find(|t| t.type_id == type_id && type_id != 0)
        .copied()
}

/// The message type with fully qualified name `full_name`.
pub fn message_type_by_name(full_name: &str) -> Option<MessageType> {
    MESSAGE_TYPES
        .iter()
        .find(|t| t.full_name == full_name)
        .copied()
}

/// The channel named `name`.
pub fn channel_by_name(name: &str) -> Option<Channel> {
    CHANNELS.iter().find(|c| c.name == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(message_type_by_id(0), None);
        assert_eq!(message_type_by_id(u16::MAX), None);
        for t in MESSAGE_TYPES {
            assert_eq!(message_type_by_id(t.type_id), Some(*t));
            assert_eq!(message_type_by_name(t.full_name), Some(*t));
        }
        assert_eq!(
            message_type_by_id(1).map(|t| t.full_name),
            Some("tradewire.v1.MarketData")
        );
        let md = channel_by_name("market_data").unwrap();
        assert_eq!(md.key_field, "symbol");
        assert_eq!(md.pattern, Pattern::PubSub);
        assert!(md.last_value);
        let cmd = channel_by_name("commands").unwrap();
        assert_eq!(cmd.pattern, Pattern::Command);
        assert_eq!(cmd.reply.map(|t| t.type_id), Some(6));
        assert_eq!(channel_by_name("nope"), None);
    }

    #[test]
    fn catalog_is_consistent() {
        for (i, a) in MESSAGE_TYPES.iter().enumerate() {
            assert_ne!(a.type_id, 0);
            for b in &MESSAGE_TYPES[i + 1..] {
                assert_ne!(a.type_id, b.type_id);
                assert_ne!(a.full_name, b.full_name);
            }
        }
        for c in CHANNELS {
            assert!(crate::wire::validate_channel(c.name).is_ok(), "{}", c.name);
            assert_eq!(message_type_by_id(c.message.type_id), Some(c.message));
            if let Some(reply) = c.reply {
                assert_eq!(message_type_by_id(reply.type_id), Some(reply));
            }
        }
    }
}

//! Typed ids. Every id is a 64-bit "snowflake": milliseconds since [`EPOCH_MS`] in the high
//! bits and a sequence in the low 22 bits, so ids sort by creation time and a history cursor is
//! just an id. On the wire they are decimal strings (JavaScript numbers lose precision past
//! 2^53); in storage they are `BIGINT`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 2024-01-01T00:00:00Z: ids count from here so that they stay small and positive.
pub const EPOCH_MS: i64 = 1_704_067_200_000;

/// Bits of an id below the timestamp.
pub const SEQUENCE_BITS: u32 = 22;

macro_rules! snowflake {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, ts_rs::TS)]
        #[ts(type = "string")]
        pub struct $name(pub i64);

        impl $name {
            /// Milliseconds since the Unix epoch at which this id was made.
            pub fn timestamp_ms(self) -> i64 {
                (self.0 >> SEQUENCE_BITS) + EPOCH_MS
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_id(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_id(d).map($name)
            }
        }
    };
}

snowflake!(
    /// A person's account.
    UserId
);
snowflake!(
    /// A text channel, voice channel, DM or group DM.
    ChannelId
);
snowflake!(
    /// A message; also the cursor for history pages.
    MessageId
);
snowflake!(
    /// An entry of the audit log; also its page cursor.
    AuditEntryId
);
snowflake!(
    /// A file stored by the server and referenced by a message.
    AttachmentId
);
snowflake!(
    /// An upload in progress (resumable by offset); becomes an attachment when finished.
    UploadId
);

/// Why a text is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id is a positive decimal integer without sign, leading zeros or spaces")
    }
}

impl std::error::Error for InvalidId {}

/// Parses an id in its one canonical form: ASCII digits, no sign, no leading zero, no
/// whitespace, positive and within `i64`. `"+5"`, `"05"` and `" 5"` are not ids, so one id
/// never has two spellings (Rust's own `i64` parser accepts a `+`).
pub fn parse_id(s: &str) -> Result<i64, InvalidId> {
    let digits = s.as_bytes();
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidId);
    }
    s.parse::<i64>().map_err(|_| InvalidId)
}

/// Accepts the canonical decimal string (see [`parse_id`]) or a positive JSON integer.
fn deserialize_id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id as a decimal string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            parse_id(v).map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).ok().filter(|n| *n > 0).ok_or_else(|| E::custom("id out of range"))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            if v > 0 { Ok(v) } else { Err(E::custom("id must be positive")) }
        }
    }
    d.deserialize_any(V)
}

/// Makes the id for `now_ms` and sequence `seq`; the server's generator keeps `seq` unique.
pub fn compose(now_ms: i64, seq: i64) -> i64 {
    ((now_ms - EPOCH_MS).max(0) << SEQUENCE_BITS) | (seq & ((1 << SEQUENCE_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_strings_and_sort_by_time() {
        let a = MessageId(compose(EPOCH_MS + 1_000, 0));
        let b = MessageId(compose(EPOCH_MS + 1_001, 0));
        assert!(a < b);
        assert_eq!(a.timestamp_ms(), EPOCH_MS + 1_000);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{}\"", a.0));
        let back: MessageId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn malformed_ids_are_refused() {
        assert!(serde_json::from_str::<UserId>("\"abc\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"-4\"").is_err());
        assert!(serde_json::from_str::<UserId>("0").is_err());
        assert_eq!(serde_json::from_str::<UserId>("17").unwrap(), UserId(17));
    }

    #[test]
    fn an_id_has_exactly_one_spelling() {
        for bad in ["+5", "05", "0", " 5", "5 ", "5\n", "", "-0", "1e3", "5.0", "٥", "9223372036854775808"] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
            assert!(bad.parse::<ChannelId>().is_err(), "{bad:?}");
            assert!(serde_json::from_value::<ChannelId>(serde_json::json!(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(parse_id("9223372036854775807"), Ok(i64::MAX));
        assert_eq!("1234".parse::<MessageId>(), Ok(MessageId(1234)));
    }
}

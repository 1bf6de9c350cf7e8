//! Decoding a client's text frame into a [`ClientMsg`], with the exact error when it is not
//! one: `unknown_op` only when the `op` names no op this server has; a known op with a bad
//! field (wrong type, missing, an enum value that does not exist) is `malformed_request`, as is
//! anything that is not a JSON object with a string `op`. Before and after `Identify` alike.
//!
//! The list of ops comes from the `ClientMsg` type itself (see [`known_ops`]), so a new op is
//! decoded and classified with no change here.

use std::fmt;
use std::sync::OnceLock;

use hearth_protocol::gateway::ClientMsg;
use hearth_protocol::{ApiError, ErrorCode, MAX_FRAME_BYTES};
use serde::Deserialize;

/// A frame that could not be taken as a `ClientMsg`: what to tell the client.
#[derive(Debug)]
pub struct Refused {
    pub error: ApiError,
    /// The op the frame named (clipped when it is not one this server knows).
    pub op: Option<String>,
    /// The frame's `nonce`, when it had a string one, so a client can match the refusal.
    pub nonce: Option<String>,
}

/// Longest piece of client text (an unknown op's name, a serde message quoting a value) put
/// into an error message.
const ECHO_CHARS: usize = 120;

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<ClientMsg, Refused> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(Refused {
            error: ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("frames are limited to {MAX_FRAME_BYTES} bytes"),
            ),
            op: None,
            nonce: None,
        });
    }
    serde_json::from_str::<ClientMsg>(text).map_err(|e| classify(text, &e))
}

/// Why `text` is not a `ClientMsg`; only called on the error path, so it may parse again.
fn classify(text: &str, error: &serde_json::Error) -> Refused {
    let malformed = |message: String| Refused {
        error: ApiError::new(ErrorCode::MalformedRequest, message),
        op: None,
        nonce: None,
    };
    let value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v,
        Err(e) => return malformed(format!("a frame is one JSON object: {}", clip(&e.to_string()))),
    };
    let Some(object) = value.as_object() else {
        return malformed("a frame is a JSON object with an \"op\"".into());
    };
    let nonce = object.get("nonce").and_then(|n| n.as_str()).map(str::to_string);
    let Some(op) = object.get("op").and_then(|op| op.as_str()) else {
        return Refused { nonce, ..malformed("a frame needs an \"op\" naming the operation".into()) };
    };
    match known_ops().iter().find(|known| **known == op) {
        None => Refused {
            error: ApiError::new(ErrorCode::UnknownOp, format!("unknown op {:?}", clip(op))),
            op: Some(clip(op)),
            nonce,
        },
        // serde's message names the field and the expected type, never anything of ours.
        Some(known) => Refused {
            error: ApiError::new(
                ErrorCode::MalformedRequest,
                format!("malformed {known}: {}", clip(&error.to_string())),
            ),
            op: Some(known.to_string()),
            nonce,
        },
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(ECHO_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// The op names `ClientMsg` accepts, as its derived `Deserialize` lists them: decoding a
/// frame with an op that cannot exist makes serde report the variants it expected, which a
/// small error type captures.
pub fn known_ops() -> &'static [&'static str] {
    static OPS: OnceLock<&'static [&'static str]> = OnceLock::new();
    OPS.get_or_init(|| {
        let probe = serde::de::value::MapDeserializer::<_, VariantProbe>::new(std::iter::once(("op", "\0")));
        match ClientMsg::deserialize(probe) {
            Err(VariantProbe(Some(ops))) => ops,
            _ => &[],
        }
    })
}

#[derive(Debug)]
struct VariantProbe(Option<&'static [&'static str]>);

impl fmt::Display for VariantProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant probe")
    }
}

impl std::error::Error for VariantProbe {}

impl serde::de::Error for VariantProbe {
    fn custom<T: fmt::Display>(_: T) -> Self {
        VariantProbe(None)
    }
    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        VariantProbe(Some(expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        decode(text).unwrap_err().error.code
    }

    #[test]
    fn the_op_list_is_the_client_msg_variants() {
        let ops = known_ops();
        for op in ["Identify", "Resume", "Heartbeat", "SendMessage", "SetStatus", "VoiceSignal", "VoiceLeave"]
        {
            assert!(ops.contains(&op), "{op} missing from {ops:?}");
        }
        assert!(!ops.contains(&"Dispatch"));
    }

    #[test]
    fn a_known_op_with_a_bad_field_is_malformed_and_only_an_unknown_op_is_unknown() {
        // Unknown enum values inside a known op: serde says "unknown variant" here too.
        assert_eq!(code(r#"{"op":"SetStatus","status":"sleeping"}"#), ErrorCode::MalformedRequest);
        assert_eq!(
            code(r#"{"op":"VoiceSignal","to":"5","signal":{"kind":"telepathy"}}"#),
            ErrorCode::MalformedRequest
        );
        assert_eq!(code(r#"{"op":"SendMessage","channel_id":"5","nonce":"n"}"#), ErrorCode::MalformedRequest);
        assert_eq!(
            code(r#"{"op":"SendMessage","channel_id":5.5,"nonce":"n","content":"x"}"#),
            ErrorCode::MalformedRequest
        );
        assert_eq!(
            code(r#"{"op":"SendMessage","channel_id":"+5","nonce":"n","content":"x"}"#),
            ErrorCode::MalformedRequest
        );
        assert_eq!(code(r#"{"op":"Heartbeat","last_seq":-1}"#), ErrorCode::MalformedRequest);
        assert_eq!(code(r#"{"op":"Teleport"}"#), ErrorCode::UnknownOp);
        assert_eq!(code(r#"{"op":"sendmessage"}"#), ErrorCode::UnknownOp);
        for not_a_frame in
            ["", "nul", "[]", "\"SendMessage\"", "{}", r#"{"op":5}"#, r#"{"op":null}"#, "{\"op\":"]
        {
            assert_eq!(code(not_a_frame), ErrorCode::MalformedRequest, "{not_a_frame:?}");
        }
    }

    #[test]
    fn refusals_name_known_ops_and_echo_the_nonce() {
        let r = decode(r#"{"op":"SendMessage","channel_id":"x","nonce":"abc","content":"hi"}"#).unwrap_err();
        assert_eq!(r.op.as_deref(), Some("SendMessage"));
        assert_eq!(r.nonce.as_deref(), Some("abc"));
        let r = decode(r#"{"op":"Nope","nonce":"abc"}"#).unwrap_err();
        assert_eq!(r.op.as_deref(), Some("Nope"));
        assert_eq!(r.nonce.as_deref(), Some("abc"));
    }

    #[test]
    fn echoed_client_text_is_clipped() {
        let long = "x".repeat(10_000);
        let r = decode(&format!(r#"{{"op":"{long}"}}"#)).unwrap_err();
        assert!(r.error.message.chars().count() < 200, "{}", r.error.message.len());
        let r = decode(&format!(r#"{{"op":"SetStatus","status":"{long}"}}"#)).unwrap_err();
        assert!(r.error.message.chars().count() < 200);
    }

    #[test]
    fn oversized_frames_are_refused_unread() {
        let big = format!(r#"{{"op":"Heartbeat","pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert_eq!(code(&big), ErrorCode::PayloadTooLarge);
    }

    mod fuzz {
        //! Arbitrary and mutated frames: never a panic, always a typed refusal.
        use super::*;
        use hearth_protocol::gateway::ClientMsg;
        use hearth_protocol::{ChannelId, MessageId, UserId};
        use proptest::prelude::*;

        /// Valid frames of several ops, as a client would send them.
        fn valid_frames() -> Vec<String> {
            let msgs = [
                ClientMsg::Identify { token: "t".into(), protocol_version: 2, status: None },
                ClientMsg::Heartbeat { last_seq: Some(7) },
                ClientMsg::SendMessage {
                    channel_id: ChannelId(42),
                    nonce: "n".into(),
                    content: "hello".into(),
                    reply_to: Some(MessageId(9)),
                    attachments: vec![hearth_protocol::AttachmentId(11)],
                },
                ClientMsg::VoiceSignal {
                    to: UserId(3),
                    signal: hearth_protocol::model::Signal::Candidate {
                        candidate: "c".into(),
                        sdp_mid: None,
                        sdp_mline_index: Some(0),
                    },
                },
                ClientMsg::SetStatus { status: hearth_protocol::model::Status::Dnd },
            ];
            msgs.iter().map(|m| serde_json::to_string(m).unwrap()).collect()
        }

        fn check(text: &str) {
            match decode(text) {
                Ok(_) => {}
                Err(r) => {
                    assert!(
                        matches!(
                            r.error.code,
                            ErrorCode::MalformedRequest | ErrorCode::UnknownOp | ErrorCode::PayloadTooLarge
                        ),
                        "{:?} for {text:?}",
                        r.error.code
                    );
                    if r.error.code == ErrorCode::UnknownOp {
                        let op = r.op.as_deref().unwrap_or_default();
                        assert!(!known_ops().contains(&op), "{op} is known but called unknown");
                    }
                    assert!(r.error.message.chars().count() <= 2 * ECHO_CHARS);
                }
            }
        }

        /// Edits a valid frame: replace, insert or delete one byte (kept as UTF-8 text).
        fn mutate(frame: &str, at: usize, byte: u8, how: u8) -> String {
            let mut bytes = frame.as_bytes().to_vec();
            let at = at % (bytes.len() + 1);
            match how % 3 {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.push(byte),
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn arbitrary_text_never_panics(text in any::<String>()) {
                check(&text);
            }

            #[test]
            fn mutated_frames_get_a_typed_answer(
                which in 0usize..5, edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6)
            ) {
                let mut frame = valid_frames()[which].clone();
                for (at, byte, how) in edits {
                    frame = mutate(&frame, at, byte, how);
                }
                check(&frame);
            }

            #[test]
            fn a_known_op_with_any_other_fields_is_never_unknown(
                which in 0usize..5, key in "[a-z_]{1,12}", value in any::<i64>()
            ) {
                let frame = valid_frames()[which].clone();
                let mut v: serde_json::Value = serde_json::from_str(&frame).unwrap();
                v[key.as_str()] = serde_json::json!(value);
                if let Err(r) = decode(&v.to_string()) {
                    prop_assert_eq!(r.error.code, ErrorCode::MalformedRequest);
                }
            }
        }
    }
}

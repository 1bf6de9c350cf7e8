//! Extractors whose rejections are our typed `ApiError`s rather than axum's plain-text ones,
//! and the one JSON body decoder every route uses ([`decode_json`]): a body that is not JSON,
//! is JSON of the wrong shape (an array where an object belongs, a wrong type, a missing
//! field, an unknown enum value) or names a field the route does not have is 400
//! `malformed_request`; one over the route's limit is 413 `payload_too_large`. Ids in paths
//! and queries are parsed strictly (`hearth_protocol::ids::parse_id`), and a malformed one is
//! 400 too (a well-formed id of nothing is 404).
//!
//! Unknown fields are refused everywhere, not ignored: a typo in a PATCH body would otherwise
//! answer 200 and change nothing.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use hearth_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use super::limits::{self, Limits};
use crate::error::AppError;

/// Longest piece of a decoder's message (which may quote the client's input) sent back.
const ECHO_CHARS: usize = 200;

fn malformed(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::MalformedRequest, message)
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(ECHO_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Decodes a JSON body into `T`, strictly (see the module doc).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut unknown: Option<String> = None;
    let value: T = serde_ignored::deserialize(&mut de, |path| {
        unknown.get_or_insert_with(|| path.to_string());
    })
    .map_err(|e| malformed(format!("malformed body: {}", clip(&e.to_string()))))?;
    de.end().map_err(|e| malformed(format!("malformed body: {}", clip(&e.to_string()))))?;
    if let Some(path) = unknown {
        return Err(malformed(format!("unknown field {:?}", clip(&path))));
    }
    Ok(value)
}

/// The body's bytes within the route's limit, after checking it is declared as JSON.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, AppError> {
    let is_json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let mime = v.split(';').next().unwrap_or("").trim();
        mime.eq_ignore_ascii_case("application/json")
    });
    let limit = req.extensions().get::<Limits>().copied().unwrap_or(limits::DEFAULT).body;
    let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
        match (e.status().as_u16(), limit) {
            (413, Some(max)) => limits::body_too_large(max),
            (413, None) => AppError::new(ErrorCode::PayloadTooLarge, "the request body is too large"),
            _ => malformed("the request body could not be read"),
        }
    })?;
    if !is_json && !bytes.is_empty() {
        return Err(malformed("send the body as Content-Type: application/json"));
    }
    Ok(bytes)
}

/// A JSON body; required.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes = json_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(malformed("this route needs a JSON body"));
        }
        decode_json(&bytes).map(Json)
    }
}

/// A JSON body that may be left out (then `T::default()`), as strict as [`Json`] when given.
pub struct JsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes = json_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(JsonOrEmpty(T::default()));
        }
        decode_json(&bytes).map(JsonOrEmpty)
    }
}

pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| match e {
                PathRejection::FailedToDeserializePathParams(e) => {
                    malformed(format!("malformed path: {}", clip(&e.body_text())))
                }
                other => AppError::Internal(anyhow::anyhow!("path extraction: {}", other.body_text())),
            })
    }
}

pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| malformed(clip(&e.body_text())))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_protocol::api::{LoginRequest, LogoutRequest, UpdateProfileRequest};

    fn code<T: DeserializeOwned>(body: &str) -> Option<ErrorCode> {
        decode_json::<T>(body.as_bytes()).err().map(|e| e.to_api().code)
    }

    #[test]
    fn wrong_shapes_and_unknown_fields_are_malformed() {
        let m = Some(ErrorCode::MalformedRequest);
        assert_eq!(code::<LoginRequest>(r#"{"username":"a","password":"b"}"#), None);
        assert_eq!(code::<LoginRequest>(r#"[{"username":"a","password":"b"}]"#), m);
        assert_eq!(code::<LoginRequest>(r#"{"username":5,"password":"b"}"#), m);
        assert_eq!(code::<LoginRequest>(r#"{"username":"a"}"#), m);
        assert_eq!(code::<LoginRequest>(r#"{"username":"a","password":"b"} {}"#), m);
        assert_eq!(code::<LoginRequest>(r#"{"username":"a","password":"b","admin":true}"#), m);
        assert_eq!(code::<UpdateProfileRequest>(r#"{"displayname":"typo"}"#), m);
        assert_eq!(code::<LogoutRequest>(r#"{"everywhere":"yes"}"#), m);
        assert_eq!(code::<LogoutRequest>("null"), m);
        assert_eq!(code::<LogoutRequest>("\u{feff}{}"), m);
    }

    mod fuzz {
        //! Arbitrary and mutated bodies: never a panic, always `malformed_request`.
        use super::*;
        use hearth_protocol::api::{
            CreateChannelRequest, CreateDmRequest, RegisterRequest, SendMessageRequest, UpdateChannelRequest,
        };
        use proptest::prelude::*;

        fn all_refusals_are_malformed(body: &[u8]) {
            fn one<T: DeserializeOwned>(body: &[u8]) {
                if let Err(e) = decode_json::<T>(body) {
                    assert_eq!(e.to_api().code, ErrorCode::MalformedRequest);
                }
            }
            one::<RegisterRequest>(body);
            one::<LoginRequest>(body);
            one::<LogoutRequest>(body);
            one::<UpdateProfileRequest>(body);
            one::<CreateChannelRequest>(body);
            one::<UpdateChannelRequest>(body);
            one::<CreateDmRequest>(body);
            one::<SendMessageRequest>(body);
        }

        const VALID: [&str; 4] = [
            r#"{"invite":"abc","username":"eve","password":"long enough","display_name":"Eve"}"#,
            r#"{"name":"general","kind":"text","topic":"t","private":false,"members":["5"]}"#,
            r#"{"recipients":["12","13"]}"#,
            r#"{"nonce":"n","content":"hello","reply_to":"77"}"#,
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                all_refusals_are_malformed(&body);
            }

            #[test]
            fn mutated_bodies_get_a_typed_answer(
                which in 0usize..4, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
            ) {
                let mut body = VALID[which].as_bytes().to_vec();
                for (at, byte) in edits {
                    let at = at % (body.len() + 1);
                    if byte % 2 == 0 && at < body.len() { body[at] = byte } else { body.insert(at, byte) }
                }
                all_refusals_are_malformed(&body);
            }

            #[test]
            fn deep_nesting_is_refused_not_overflowed(depth in 100usize..5000) {
                let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                all_refusals_are_malformed(body.as_bytes());
            }
        }
    }
}

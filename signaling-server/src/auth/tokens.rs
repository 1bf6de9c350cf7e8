//! Access tokens are HS256 JWTs with the algorithm pinned, an audience, the issuer (the
//! server's public URL) and a short expiry. Refresh tokens are random strings stored hashed.

use std::time::Duration;

use base64::Engine;
use hearth_protocol::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Digest;

pub const AUDIENCE: &str = "hearth";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The login (refresh-token family).
    pub fam: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    pub access_ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &[u8], issuer: &str, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            access_ttl,
        }
    }

    pub fn issue(&self, user: UserId, family: &str) -> anyhow::Result<String> {
        let now = unix_secs();
        let claims = Claims {
            sub: user.0.to_string(),
            fam: family.to_string(),
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_string(),
            iat: now,
            exp: now + self.access_ttl.as_secs(),
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// The claims of a valid token; `None` for anything expired, forged, of another algorithm
    /// or audience or issuer.
    pub fn verify(&self, token: &str) -> Option<(UserId, Claims)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let id = data.claims.sub.parse::<i64>().ok().filter(|n| *n > 0)?;
        Some((UserId(id), data.claims))
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `bytes` random bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// What the database keeps of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(b"0123456789abcdef0123456789abcdef", "http://hearth.test", Duration::from_secs(60))
    }

    #[test]
    fn a_token_round_trips() {
        let t = tokens();
        let jwt = t.issue(UserId(42), "fam").unwrap();
        let (id, claims) = t.verify(&jwt).unwrap();
        assert_eq!(id, UserId(42));
        assert_eq!(claims.fam, "fam");
    }

    #[test]
    fn tampered_foreign_and_unsigned_tokens_are_refused() {
        let t = tokens();
        let jwt = t.issue(UserId(42), "fam").unwrap();
        let mut parts: Vec<&str> = jwt.split('.').collect();
        // Another user's id in the payload, original signature.
        let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
                .unwrap()
                .replace("\"42\"", "\"43\""),
        );
        parts[1] = &forged_payload;
        assert!(t.verify(&parts.join(".")).is_none());
        // alg=none with no signature.
        let none_header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", jwt.split('.').nth(1).unwrap());
        assert!(t.verify(&unsigned).is_none());
        // Signed with another secret, or for another issuer.
        let other =
            Tokens::new(b"another secret of enough length!!", "http://hearth.test", Duration::from_secs(60));
        assert!(t.verify(&other.issue(UserId(42), "fam").unwrap()).is_none());
        let elsewhere =
            Tokens::new(b"0123456789abcdef0123456789abcdef", "http://other", Duration::from_secs(60));
        assert!(t.verify(&elsewhere.issue(UserId(42), "fam").unwrap()).is_none());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let t =
            Tokens::new(b"0123456789abcdef0123456789abcdef", "http://hearth.test", Duration::from_secs(0));
        let mut claims = Claims {
            sub: "1".into(),
            fam: "f".into(),
            iss: "http://hearth.test".into(),
            aud: AUDIENCE.into(),
            iat: 0,
            exp: unix_secs() - 60,
        };
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap();
        assert!(t.verify(&expired).is_none());
        claims.exp = unix_secs() + 60;
        let fresh = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap();
        assert!(t.verify(&fresh).is_some());
    }
}

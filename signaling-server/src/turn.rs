//! TURN credentials in the coturn REST format: `username = "<expiry>:<user id>"`,
//! `credential = base64(HMAC-SHA1(secret, username))`. A coturn started with
//! `use-auth-secret` and the same `static-auth-secret` accepts them until the expiry.

use std::time::Duration;

use base64::Engine;
use hearth_protocol::UserId;
use hearth_protocol::model::IceServer;
use hmac::{Hmac, Mac};

pub fn credential(secret: &str, username: &str) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// ICE servers for `user`: STUN URLs as they are, TURN URLs with fresh credentials.
pub fn ice_servers(
    secret: &str,
    urls: &[String],
    user: UserId,
    ttl: Duration,
    now_secs: u64,
) -> Vec<IceServer> {
    let stun: Vec<String> = urls.iter().filter(|u| u.starts_with("stun:")).cloned().collect();
    let turn: Vec<String> = urls.iter().filter(|u| !u.starts_with("stun:")).cloned().collect();
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer { urls: stun, username: None, credential: None });
    }
    if !turn.is_empty() {
        let username = format!("{}:{}", now_secs + ttl.as_secs(), user.0);
        let credential = credential(secret, &username);
        servers.push(IceServer { urls: turn, username: Some(username), credential: Some(credential) });
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_matches_the_coturn_rest_scheme() {
        // Reference value computed independently with openssl:
        // echo -n "1700000000:42" | openssl dgst -binary -sha1 -hmac "s3cret" | base64
        assert_eq!(credential("s3cret", "1700000000:42"), "pkGfLzidB0U1T2lLkxNy/vgk7ZE=");
    }

    #[test]
    fn turn_urls_get_expiring_credentials_and_stun_urls_none() {
        let urls = vec!["stun:h:3478".to_string(), "turn:h:3478?transport=udp".to_string()];
        let s = ice_servers("k", &urls, UserId(7), Duration::from_secs(60), 1000);
        assert_eq!(s.len(), 2);
        assert!(s[0].username.is_none());
        assert_eq!(s[1].username.as_deref(), Some("1060:7"));
        assert_eq!(s[1].credential.as_deref(), Some(credential("k", "1060:7").as_str()));
    }
}

//! TURN credentials in the coturn REST format: `username = "<expiry>:<user id>"`,
//! `credential = base64(HMAC-SHA1(secret, username))`. A coturn started with
//! `use-auth-secret` and the same `static-auth-secret` accepts them until the expiry, and so
//! does the embedded STUN/TURN server in [`server`].

pub mod relay;
pub mod server;

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

/// The URLs clients use for the embedded server at `host:port`: STUN, and TURN over UDP.
pub fn embedded_urls(host: &str, port: u16) -> Vec<String> {
    vec![format!("stun:{host}:{port}"), format!("turn:{host}:{port}?transport=udp")]
}

/// The host part of an `http(s)://host[:port][/path]` URL, `[v6]` brackets kept; `None` when
/// it is a wildcard address (0.0.0.0, [::]) that no client can reach.
pub fn public_host(public_url: &str) -> Option<&str> {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if authority.starts_with('[') {
        authority.find(']').map_or(authority, |end| &authority[..=end])
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => None,
        _ if host.is_empty() => None,
        _ => Some(host),
    }
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

    #[test]
    fn the_public_host_is_what_clients_can_reach() {
        assert_eq!(public_host("https://chat.example.org"), Some("chat.example.org"));
        assert_eq!(public_host("http://10.1.2.3:8080/x"), Some("10.1.2.3"));
        assert_eq!(public_host("http://[2001:db8::1]:8080"), Some("[2001:db8::1]"));
        assert_eq!(public_host("http://0.0.0.0:8080"), None);
        assert_eq!(public_host("http://[::]:8080"), None);
    }

    #[test]
    fn embedded_urls_name_stun_and_turn_over_udp() {
        assert_eq!(embedded_urls("h", 3478), ["stun:h:3478", "turn:h:3478?transport=udp"]);
    }
}
